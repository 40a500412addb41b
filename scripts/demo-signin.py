#!/usr/bin/python3
"""The demo's second half: poolgate as an admin meets it, on this machine.

    tests/fixtures/dev_idp.py -- /usr/bin/python3 scripts/demo-signin.py \\
        --module PATH --helper PATH --poolgate PATH

Runs beside the development identity provider and Azure DevOps double.  As
root, in a private mount namespace (the host's /etc/pam.d, accounts and
sudoers are never touched), it makes a throw-away agent account pg-agent,
then: logs in as it through PAM (pamtester) with a device-code sign-in that
a simulated operator approves, which also registers the agent into its pool;
logs in again without a code; refuses an operator without the role; and
re-registers through sudo with a fresh sign-in.  Without root it says so
and does nothing.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
sys.path.insert(0, FIXTURES)
import system_pam as world  # noqa: E402

DEMO_SERVICE = ("auth    required MOD prompt=info\n"
                "account required MOD\n"
                "session required MOD register\n")


def say(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(argv, shown, action=None, roles=world.ROLE, answer=False):
    """Run argv on a pty as an operator would see it; returns its exit status."""
    print(" ".join(shown), flush=True)
    if action:
        print(f"   (the operator signs in on their phone and "
              f"{'approves' if action == 'approve' else 'declines'}; "
              f"roles: {roles})", flush=True)
    rc, out = world.run_pty(argv, action, roles=roles, answer=answer)
    print("   " + out.strip().replace("\r", "").replace("\n", "\n   "))
    print(f"(exit status {rc})", flush=True)
    return rc


def expect(ok, what):
    if not ok:
        sys.exit(f"demo: expected {what}")


def inner(args):
    work = tempfile.mkdtemp(prefix="pg-demo-")
    try:
        world.build_world(work, args.module, args.helper, args.poolgate,
                          {"poolgate-demo": DEMO_SERVICE})
        world.control("config", interval="1")
        agent_dir = os.path.join(work, "home", world.AGENT, "agent")
        pamtester = ["/usr/bin/pamtester", "poolgate-demo", world.AGENT, "authenticate",
                     "acct_mgmt", "open_session"]

        say("6. Logging in as the agent account needs a sign-in; the first login enrolls the agent")
        print("/etc/pam.d/poolgate-demo:\n   " + DEMO_SERVICE.replace("MOD", "pam_poolgate.so")
              .strip().replace("\n", "\n   "))
        rc = show(pamtester, ["$ pamtester", *pamtester[1:]], "approve")
        expect(rc == 0 and os.path.exists(os.path.join(agent_dir, ".agent")),
               "the login to succeed and the agent to be registered")
        print(f"$ ls -la {agent_dir}")
        print(subprocess.run(["ls", "-la", agent_dir], capture_output=True, text=True).stdout)
        with open(os.path.join(agent_dir, ".agent"), encoding="utf-8-sig") as f:
            print(f"$ cat {agent_dir}/.agent\n{f.read()}")

        say("7. The next login within the token's lifetime: no code, no second registration")
        rc = show(pamtester, ["$ pamtester", *pamtester[1:]])
        expect(rc == 0 and len(world.pool_calls("POST")) == 1, "a login without a code")

        say("8. An operator without the AgentPool.Enroll role: refused")
        world.forget(work, world.AGENT)
        rc = show(pamtester, ["$ pamtester", *pamtester[1:]], "approve", roles="Some.Other.Role")
        expect(rc != 0, "a refusal")

        say("9. Re-registration through sudo, with a fresh sign-in every time")
        conf, helper = os.path.join(work, "poolgate.conf"), os.path.join(work, "poolgate-helper")
        argv = world.as_user(world.AGENT, ["/usr/bin/sudo", f"{work}/poolgate", "--config", conf,
                                           "--helper", helper, "register", "--replace"])
        rc = show(argv, [f"{world.AGENT}$ sudo poolgate register --replace"], "approve",
                  answer=True)
        expect(rc == 0 and len(world.pool_calls("PUT")) == 1, "the agent to be replaced")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--module", required=True)
    p.add_argument("--helper", required=True)
    p.add_argument("--poolgate", required=True)
    p.add_argument("--inner", action="store_true")
    args = p.parse_args()
    if args.inner:
        return inner(args)
    if os.geteuid() != 0:
        print("\n(the sign-in part of the demo needs root: it makes a throw-away account "
              "in a private mount namespace; skipped)")
        return 0
    return subprocess.run(["/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                           sys.executable, os.path.abspath(__file__), "--inner",
                           "--module", args.module, "--helper", args.helper,
                           "--poolgate", args.poolgate]).returncode


if __name__ == "__main__":
    sys.exit(main())
