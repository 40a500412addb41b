#!/bin/sh
# Compare the dynamic symbols libpoolgate.so exports with its version script:
# anything exported that the script does not list, or listed but missing,
# is an ABI accident.
set -eu
lib=$1 sym=$2
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sed 's/@.*//' | grep -v '^POOLGATE_' | sort -u)
want=$(sed -n 's/^ *\(pg_[a-z0-9_]*\);$/\1/p' "$sym" | sort -u)
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
