#!/bin/bash
# Install the build into a scratch DESTDIR and check the tree: every file in
# the place interface.md names, with safe modes (nothing set-uid or set-gid,
# nothing writable by group or others).
#   check-install.sh BUILD_DIR
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
    /usr/bin/python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["prefix"])')
libdir=$(meson introspect "$build" --buildoptions |
    /usr/bin/python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["libdir"])')
sysconf=$(meson introspect "$build" --buildoptions |
    /usr/bin/python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["sysconfdir"])')
case $sysconf in /*) ;; *) sysconf=$prefix/$sysconf ;; esac
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
root=$dest$prefix
passed=0 failed=0
expect() { # expect PATH MODE
    local path=$1 mode=$2 got
    if [ ! -e "$path" ]; then
        echo "missing: ${path#"$dest"}"; failed=$((failed + 1)); return
    fi
    got=$(stat -c %a "$path")
    if [ "$got" != "$mode" ]; then
        echo "mode of ${path#"$dest"} is $got, expected $mode"; failed=$((failed + 1)); return
    fi
    passed=$((passed + 1))
}
expect "$root/bin/poolgate" 755
expect "$root/libexec/poolgate/poolgate-helper" 755
expect "$dest$sysconf/poolgate/poolgate.conf" 644
expect "$root/include/poolgate/poolgate.h" 644
expect "$dest$libdir/libpoolgate.so.0.1.0" 755
expect "$dest$libdir/pkgconfig/poolgate.pc" 644
expect "$root/share/man/man1/poolgate.1" 644
expect "$root/share/man/man5/poolgate.conf.5" 644
expect "$root/share/man/man8/poolgate-helper.8" 644
expect "$root/lib/sysusers.d/poolgate.conf" 644
expect "$root/share/pam-configs/poolgate" 644
expect "$root/share/doc/poolgate/examples/pam.d/poolgate-sshd" 644
expect "$root/share/doc/poolgate/examples/sshd_config.d/poolgate.conf" 644
expect "$root/share/doc/poolgate/examples/sudoers.d/poolgate" 644
expect "$root/share/doc/poolgate/examples/cloud-init/poolgate.yaml" 644
expect "$root/lib/tmpfiles.d/poolgate.conf" 644
expect "$root/lib/systemd/system/poolgate-enroll.service" 644
grep -qx "ExecStart=$prefix/bin/poolgate register --unattended --if-not-registered" "$root/lib/systemd/system/poolgate-enroll.service" && passed=$((passed + 1)) ||
    { echo "poolgate-enroll.service: ExecStart does not name $prefix/bin/poolgate"; failed=$((failed + 1)); }
# systemd's own check of the unit (offline), with ExecStart= pointing at the
# installed binary in DESTDIR; any complaint counts.
if command -v systemd-analyze >/dev/null; then
    unit=$(mktemp -d)
    sed "s|^ExecStart=$prefix/bin/poolgate|ExecStart=$root/bin/poolgate|" \
        "$root/lib/systemd/system/poolgate-enroll.service" >"$unit/poolgate-enroll.service"
    complaints=$(systemd-analyze verify --man=no "$unit/poolgate-enroll.service" 2>&1)
    rm -rf "$unit"
    if [ -z "$complaints" ]; then passed=$((passed + 1))
    else echo "systemd-analyze verify: $complaints"; failed=$((failed + 1)); fi
fi
[ -L "$dest$libdir/libpoolgate.so.0" ] && passed=$((passed + 1)) ||
    { echo "missing: libpoolgate.so.0 link"; failed=$((failed + 1)); }
unsafe=$(find "$dest" -type f \( -perm -4000 -o -perm -2000 -o -perm -020 -o -perm -002 \))
if [ -n "$unsafe" ]; then echo "unsafe modes: $unsafe"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
