#!/usr/bin/python3
"""Every config key and CLI option in the code is documented where admins look.

    check_docs.py SOURCE_ROOT

Config keys come from lib/core/config.c's key table and must appear in
man/poolgate.conf.5 and conf/poolgate.conf; long options and commands come
from helper/poolgate.c and must appear in man/poolgate.1; PAM module
arguments come from pam/pam_poolgate.c and must appear in man/pam_poolgate.8.
Every AADSTS number lib/core/entra_errors.c names has a row in the README's table
of Entra's refusals, and every row names a test that exists and exercises
that code.
"""
import re
import sys


def read(root, path):
    with open(f"{root}/{path}", encoding="utf-8") as f:
        return f.read()


# Where each test named in the README's table lives.
TEST_FILES = {"cli-entra": "tests/fixtures/cli_entra.py", "cli-login": "tests/fixtures/cli_login.py",
              "cli-register": "tests/fixtures/cli_register.py",
              "pam": "tests/unit/test_pam.c", "system": "tests/fixtures/system_pam.py",
              "test_device": "tests/unit/test_device.c"}


def entra_rows(root):
    """The README's "Entra's refusals" table against lib/core/entra_errors.c and the tests."""
    readme = read(root, "README.md")
    known = set(re.findall(r"^    \{(\d+), PG_IDP_", read(root, "lib/core/entra_errors.c"), re.M))
    part = readme.split("### Entra's refusals", 1)[-1].split("\n## ", 1)[0]
    rows = [l for l in part.splitlines() if l.startswith("| ") and not l.startswith("| code")]
    bad, listed = [], set()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        m = re.match(r"AADSTS(\d+)$", cells[0])
        key = m.group(1) if m else (re.findall(r"`([a-z_]+)`", cells[0]) or [None])[0]
        if m:
            listed.add(key)
        tests = re.findall(r"`([a-z_-]+)`(?: (test_[a-z_]+))?", cells[-1])
        if not tests:
            bad.append(f"README: the row for {cells[0]} names no test")
        exercised = False
        for name, function in tests:
            text = read(root, TEST_FILES[name]) if name in TEST_FILES else None
            if text is None:
                bad.append(f"README: the row for {cells[0]} names an unknown test '{name}'")
            elif function and f"static void {function}(" not in text:
                bad.append(f"README: the row for {cells[0]} names {function}, not in {name}")
            elif key and key in text:
                exercised = True
        if key and tests and not exercised and cells[0] != "anything else":
            bad.append(f"README: no test named in the row for {cells[0]} exercises it")
    for code in sorted(known - listed):
        bad.append(f"README: AADSTS{code} (lib/core/entra_errors.c) has no row in Entra's refusals")
    return len(rows), bad


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
    rows, bad = entra_rows(root)
    for msg in bad:
        print(msg)
    failed += len(bad)
    total = rows + 2 * len(keys) + len(options) + len(commands) + len(pam_args)
    print(f"docs: {total - failed} passed, {failed} failed "
          f"({len(keys)} keys, {len(options)} options, {len(commands)} commands, "
          f"{len(pam_args)} PAM arguments)")
    return 1 if failed or not keys or not options or not commands or not pam_args else 0


if __name__ == "__main__":
    sys.exit(main())
