#!/bin/sh
# Compare the dynamic symbols a shared object exports with its version
# script: anything exported that the script does not list, or listed but
# missing, is an ABI accident.  With --no-curl, also fail when the object
# would load libcurl (pam_poolgate.so must not bring it into sshd or sudo).
#   check-symbols.sh [--no-curl] OBJECT VERSION-SCRIPT
set -eu
no_curl=false
if [ "$1" = --no-curl ]; then
    no_curl=true
    shift
fi
lib=$1 sym=$2
if $no_curl && readelf -d "$lib" | grep -q 'NEEDED.*libcurl'; then
    echo "$lib needs libcurl"
    exit 1
fi
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sed 's/@.*//' | grep -v '^POOLGATE_' | sort -u)
want=$(sed -n 's/^ *\([a-z][a-z0-9_]*\);$/\1/p' "$sym" | sort -u)
if [ "$got" != "$want" ]; then
    echo "exported symbols differ from $sym:"
    diff -u /dev/fd/3 /dev/fd/4 3<<A 4<<B || true
$want
A
$got
B
    exit 1
fi
echo "ok: $(echo "$want" | wc -l) symbols, all listed in the version script"
