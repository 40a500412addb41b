#!/bin/sh
# conf/cloud-init/poolgate.yaml against cloud-init's own schema, and a broken
# copy of it (a boolean that is not one) refused, so that the check is seen
# to bite.  Skipped (77) without cloud-init (Debian package cloud-init).
#   check-cloud-init.sh SOURCE_ROOT
set -u
command -v cloud-init >/dev/null || { echo "cloud-init not installed"; exit 77; }
example="$1/conf/cloud-init/poolgate.yaml"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
out=$(cloud-init schema --config-file "$example" 2>&1) ||
    { echo "poolgate.yaml refused: $out"; exit 1; }
head -n 1 "$example" | grep -qx '#cloud-config' || { echo "no #cloud-config line"; exit 1; }
sed 's/lock_passwd: true/lock_passwd: maybe/' "$example" >"$tmp/bad.yaml"
cmp -s "$example" "$tmp/bad.yaml" && { echo "the broken copy is not broken"; exit 1; }
if cloud-init schema --config-file "$tmp/bad.yaml" >/dev/null 2>&1; then
    echo "cloud-init schema accepted a broken file: the check cannot fail"; exit 1
fi
echo "poolgate.yaml: valid cloud-config"
