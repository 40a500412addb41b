#!/usr/bin/python3
"""Every config key and CLI option in the code is documented where admins look.

    check_docs.py SOURCE_ROOT

Config keys come from lib/core/config.c's key table and must appear in
man/poolgate.conf.5 and conf/poolgate.conf; long options and commands come
from helper/poolgate.c and must appear in man/poolgate.1; PAM module
arguments come from pam/pam_poolgate.c and must appear in man/pam_poolgate.8.
"""
import re
import sys


def read(root, path):
    with open(f"{root}/{path}", encoding="utf-8") as f:
        return f.read()


def main():
    root = sys.argv[1]
    failed = 0
    keys = re.findall(r'\{"([a-z_]+)", K_', read(root, "lib/core/config.c"))
    man5 = read(root, "man/poolgate.conf.5").replace("\\-", "-")
    example = read(root, "conf/poolgate.conf")
    for key in keys:
        if not re.search(rf"\.BI? {re.escape(key)}\b", man5):
            print(f"poolgate.conf(5) does not document the key '{key}'")
            failed += 1
        if not re.search(rf"^#? ?{re.escape(key)} =", example, re.M):
            print(f"conf/poolgate.conf does not show the key '{key}'")
            failed += 1
    cli = read(root, "helper/poolgate.c")
    options = set(re.findall(r'\{"([a-z-]+)", (?:required|no)_argument', cli))
    commands = set(re.findall(r'\{"([a-z]+)", cmd_[a-z]+\}', cli))
    man1 = read(root, "man/poolgate.1").replace("\\-", "-")
    for opt in sorted(options):
        if f"--{opt}" not in man1:
            print(f"poolgate(1) does not document the option --{opt}")
            failed += 1
    for cmd in sorted(commands):
        if not re.search(rf"^\.SS {cmd}$", man1, re.M):
            print(f"poolgate(1) has no section for the command '{cmd}'")
            failed += 1
    module = read(root, "pam/pam_poolgate.c")
    pam_args = set(re.findall(r'strn?cmp\(s, "([a-z]+=?)"', module))
    man8 = read(root, "man/pam_poolgate.8").replace("\\-", "-")
    for arg in sorted(pam_args):
        if not re.search(rf"^\.(TP\n\.)?B[IR]? {re.escape(arg)}", man8, re.M):
            print(f"pam_poolgate(8) does not document the argument '{arg}'")
            failed += 1
    total = 2 * len(keys) + len(options) + len(commands) + len(pam_args)
    print(f"docs: {total - failed} passed, {failed} failed "
          f"({len(keys)} keys, {len(options)} options, {len(commands)} commands, "
          f"{len(pam_args)} PAM arguments)")
    return 1 if failed or not keys or not options or not commands or not pam_args else 0


if __name__ == "__main__":
    sys.exit(main())
