#!/usr/bin/python3
"""Many concurrent device sign-ins against the development identity provider.

    tests/fixtures/dev_idp.py -- /usr/bin/python3 bench/bench_signin.py \\
        --poolgate build/ci/helper/poolgate --helper build/ci/helper/poolgate-helper [-n 100]

Each sign-in runs `poolgate login` into its own token store; all share one
key cache.  The provider approves each code just after it has answered the
second poll authorization_pending: the latest moment before a poll, so the
client waits a whole interval for its next one.  Prints:
  - the successes;
  - the discovery and key-set fetches the provider saw (target: one each
    for the whole run);
  - CPU milliseconds per sign-in across the CLI and the helper (target
    under 20);
  - the peak RSS of one helper (target under 8 MiB), from /usr/bin/time
    around the helper of a first sign-in, which also fetches the discovery
    document and the key set.  Not the children's ru_maxrss: execve keeps
    the high-water mark of the process it replaces, so the CLI's would be
    this Python program's, and the helper's at least the CLI's;
  - the delay from the approval, as the provider recorded it, to the stored
    token (tokens.json renamed into place, its ctime plus one tick of the
    coarse clock that stamps it; target: one polling interval plus 50 ms),
    split into the wait for the next poll and the time from that poll's
    arrival to the stored token.
Figures only: nothing here is a test.
"""
import argparse
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "fixtures"))
from cli_login import Env, control, fetches  # noqa: E402

INTERVAL = 1
TIME = "/usr/bin/time"
# Files are stamped from the coarse clock, up to a tick behind the real one:
# a tick is added to every stored time, so that no delay is ever flattered.
CLOCK_REALTIME_COARSE = 5  # Linux's clock id, which Python does not name
TICK = time.clock_getres(CLOCK_REALTIME_COARSE)


def one_signin(env, conf, state, results, i, helper=None):
    cmd = env.wrapper + [env.poolgate, "--config", conf, "--helper", helper or env.helper, "login"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    code = None
    for line in p.stderr:
        m = re.search(r"enter the code (\S+)", line)
        if m:
            code = m.group(1)
            control("approve", user_code=code, roles="AgentPool.Enroll", after_polls="2")
            break
    p.stderr.read()
    rc = p.wait()
    results[i] = (rc, None)
    if rc != 0 or not code:
        return
    dev = json.loads(control("device?" + urllib.parse.urlencode({"user_code": code})))
    approved = dev["approved_at"]
    answered = min(t for t in dev["polls"] if t >= approved)  # the poll that got the tokens
    stored = os.stat(os.path.join(state, str(os.getuid()), "tokens.json")).st_ctime + TICK
    results[i] = (rc, (stored - approved, answered - approved, stored - answered))


def helper_peak_rss(env, conf, state):
    """Peak RSS (KiB) of the helper of one sign-in, or None without /usr/bin/time."""
    if not os.access(TIME, os.X_OK):
        return None
    out = os.path.join(env.work, "helper-rss")
    wrapper = os.path.join(env.work, "helper-timed")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {TIME} -f %M -o {shlex.quote(out)} {shlex.quote(env.helper)}\n")
    os.chmod(wrapper, 0o755)
    result = [None]
    one_signin(env, conf, state, result, 0, helper=wrapper)
    if result[0][0] != 0:
        return None
    with open(out) as f:
        return int(f.read().split()[-1])


def spread(values):
    values = sorted(values)
    return (f"median {values[len(values) // 2] * 1000:.0f} ms, "
            f"max {values[-1] * 1000:.0f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--poolgate", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("-n", type=int, default=100)
    args = ap.parse_args()
    env = Env(os.path.abspath(args.poolgate), os.path.abspath(args.helper))
    try:
        control("config", interval=str(INTERVAL), expires_in="900")
        confs = []
        for i in range(args.n + 1):
            state = os.path.join(env.work, f"state{i}")
            os.mkdir(state, 0o700)
            confs.append((env.write_conf(f"c{i}.conf", state_dir=state), state))
        # One sign-in first, alone and measured, so that the key cache and
        # discovery are shared by the rest.
        rss = helper_peak_rss(env, *confs.pop())
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        results = [None] * args.n
        threads = [threading.Thread(target=one_signin, args=(env, c, s, results, i))
                   for i, (c, s) in enumerate(confs)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ok = [r for r in results if r and r[0] == 0]
        delays = [r[1] for r in ok if r[1] is not None]
        cpu_ms = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
        print(f"sign-ins: {len(ok)} of {args.n} succeeded in {wall:.1f} s")
        print(f"provider fetches: discovery {fetches('/openid-configuration')}, "
              f"key set {fetches('/keys')} (target 1 each)")
        print(f"CPU per sign-in (CLI + helper): {cpu_ms / max(len(ok), 1):.1f} ms (target < 20)")
        print("peak RSS of one helper: " +
              (f"{rss / 1024:.1f} MiB" if rss else f"not measured (no {TIME}, or it failed)") +
              " (target < 8)")
        if delays:
            print(f"approval to stored token: {spread(d[0] for d in delays)} "
                  f"(target < {INTERVAL * 1000 + 50} ms)")
            print(f"  approval to the next poll: {spread(d[1] for d in delays)} "
                  f"(the interval is {INTERVAL * 1000} ms)")
            print(f"  that poll to the stored token: {spread(d[2] for d in delays)}")
    finally:
        shutil.rmtree(env.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
