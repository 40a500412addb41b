#!/bin/bash
# Build the Debian packages from a copy of the tree with Debian's own tools,
# check them with lintian, install them on this machine, check what the
# installation made, run poolgate doctor, and remove them again.
#
#   tests/check-deb.sh SOURCE_DIR
#
# Needs root (dpkg -i).  Prints one line per check and ends with
# "deb: N passed, N failed".  The helper account the package creates is
# left in place on removal, as Debian packages leave system accounts.
set -uo pipefail
src=$(cd "${1:?usage: check-deb.sh SOURCE_DIR}" && pwd)
work=$(mktemp -d /tmp/pg-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "deb: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: installing packages needs root"
    exit 77
fi

# The committed tree only: no build directories, no node_modules.
mkdir "$work/poolgate"
(cd "$src" && git ls-files -z | tar --null -cf - -T -) | tar -xf - -C "$work/poolgate"
if (cd "$work/poolgate" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b"
else
    tail -n 30 "$work/build.log"
    bad "dpkg-buildpackage -us -uc -b"
    finish
fi
debs=("$work"/poolgate_*.deb "$work"/libpoolgate0_*.deb "$work"/libpoolgate-dev_*.deb)
check "three packages built" test -f "${debs[0]}" -a -f "${debs[1]}" -a -f "${debs[2]}"
if lintian --fail-on error "$work"/poolgate_*.changes >"$work/lintian.log" 2>&1; then
    ok "lintian: no errors"
else
    grep -E '^E:' "$work/lintian.log" | head -n 20
    bad "lintian: no errors"
fi

common_before=$(md5sum /etc/pam.d/common-auth)
if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >"$work/install.log" 2>&1; then
    ok "the packages install"
else
    tail -n 20 "$work/install.log"
    bad "the packages install"
    finish
fi
check "the helper account exists" getent passwd poolgate
owner_mode() { [ "$(stat -c '%U %a' "$1" 2>/dev/null)" = "$2" ]; }
check "/var/lib/poolgate: poolgate, 0700" owner_mode /var/lib/poolgate "poolgate 700"
check "/var/cache/poolgate: poolgate, 0700" owner_mode /var/cache/poolgate "poolgate 700"
check "the module is in the PAM module directory" \
    test -f "/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security/pam_poolgate.so"
check "the pam-auth-update profile is installed" test -f /usr/share/pam-configs/poolgate
check "no PAM stack was changed by the installation" \
    test "$(md5sum /etc/pam.d/common-auth)" = "$common_before"
check "poolgate(1) is installed and renders" sh -c 'man -w poolgate >/dev/null'

# Installed but not configured: doctor must say what remains, and fail.
doctor=$(poolgate doctor 2>&1)
rc=$?
echo "$doctor" | sed 's/^/     | /'
check "poolgate doctor runs and explains the configuration is missing" \
    sh -c '[ "$0" -eq 1 ] && printf "%s\n" "$1" | grep -q "^fail config: .*placeholder"' "$rc" "$doctor"

if DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq poolgate libpoolgate-dev libpoolgate0 \
    >"$work/purge.log" 2>&1; then
    ok "the packages purge"
else
    tail -n 20 "$work/purge.log"
    bad "the packages purge"
fi
check "no PAM stack names the module after removal" \
    sh -c '! grep -qs pam_poolgate /etc/pam.d/common-auth /etc/pam.d/common-account'
finish
