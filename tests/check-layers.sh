#!/bin/sh
# The library's two layers, checked from the sources: lib/core/ (what the
# PAM module links) includes nothing of lib/net/ and nothing of libcurl,
# and its forced header really does stop a file that tries.
#   check-layers.sh SOURCE-ROOT CC
set -eu
root=$1 cc=$2
fail=0
net_headers=$(cd "$root/lib/net" && ls *.h)
for f in "$root"/lib/core/*.c "$root"/lib/core/*.h; do
    for h in $net_headers; do
        if grep -q "^#include \"$h\"" "$f"; then
            echo "$f includes lib/net/$h: the core may not depend on the network layer"
            fail=1
        fi
    done
    if grep -q '^#include <curl/' "$f"; then
        echo "$f includes libcurl's headers"
        fail=1
    fi
done
# The poison must bite: a core file that includes curl.h fails to compile.
if printf '#include <curl/curl.h>\nint main(void) { return 0; }\n' |
    "$cc" -include "$root/lib/core/layer.h" -fsyntax-only -x c - 2>/dev/null; then
    echo "lib/core/layer.h does not stop a file that includes <curl/curl.h>"
    fail=1
fi
# ... while the same file without it compiles (curl's headers are there).
if ! printf '#include <curl/curl.h>\nint main(void) { return 0; }\n' |
    "$cc" -fsyntax-only -x c - 2>/dev/null; then
    echo "cannot compile against <curl/curl.h> at all: the check above proves nothing"
    fail=1
fi
[ "$fail" -eq 0 ] && echo "ok: lib/core includes nothing of lib/net or libcurl"
exit "$fail"
