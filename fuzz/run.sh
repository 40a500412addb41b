#!/bin/bash
# Run every libFuzzer target for a bounded time.
#   fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET
# BUILD_DIR is a meson build configured with -Dfuzz=true (CC=clang).  The
# seed corpora in fuzz/corpus are copied, never changed.  Prints one line
# per target and a final "fuzz: N passed, N failed".
set -uo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
for target in b64url json config jwks token responses proto devops imds vault store pam; do
    exe=$build/fuzz/fuzz_$target
    mkdir -p "$work/$target"
    cp -r "$here/corpus/$target/." "$work/$target/"
    args=(-max_total_time="$seconds" -max_len=20000 -timeout=10 -rss_limit_mb=2048
          -artifact_prefix="$work/$target-")
    case $target in
    json) args+=(-dict="$here/dict/json.dict") ;;
    token) args+=(-dict="$here/dict/token.dict") ;;
    devops) args+=(-dict="$here/dict/devops.dict") ;;
    imds) args+=(-dict="$here/dict/imds.dict") ;;
    store) args+=(-dict="$here/dict/store.dict") ;;
    pam) args+=(-dict="$here/dict/pam.dict") ;;
    esac
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$exe" "${args[@]}" "$work/$target" >"$work/$target.log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$target.log" | tail -n1)
    execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$done_line")
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    if [ "$rc" -eq 0 ] && [ -n "$done_line" ]; then
        echo "fuzz $target: ${execs} execs, cov ${cov}, ok"
        passed=$((passed + 1))
    else
        echo "fuzz $target: FAILED (exit $rc)"
        tail -n 40 "$work/$target.log"
        for a in "$work/$target-"*; do
            [ -f "$a" ] && echo "reproducer ($a): $(od -An -tx1 "$a" | head -c 600)"
        done
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
