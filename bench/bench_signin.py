#!/usr/bin/python3
"""Many concurrent device sign-ins against the development identity provider.

    tests/fixtures/dev_idp.py -- /usr/bin/python3 bench/bench_signin.py \\
        --poolgate build/ci/helper/poolgate --helper build/ci/helper/poolgate-helper [-n 100]

Each sign-in runs `poolgate login` into its own token store; all share one
key cache.  The operator approves each code after two polls.  Prints the
successes, the discovery and key-set fetches the provider saw (target: one
each for the whole run), CPU milliseconds per sign-in across the CLI and
the helper (target under 20), the peak RSS of any one of them (target under
8 MiB), and the delay from approval to the stored token (target: one
polling interval plus 50 ms).  Figures only: nothing here is a test.
"""
import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "fixtures"))
from cli_login import Env, control, fetches  # noqa: E402

INTERVAL = 1


def one_signin(env, conf, state, results, i):
    p = subprocess.Popen(env.cmd("login", conf=conf), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    approved = None
    for line in p.stderr:
        m = re.search(r"enter the code (\S+)", line)
        if m:
            time.sleep(2 * INTERVAL + 0.2)  # let two polls find it pending
            approved = time.time()
            control("approve", user_code=m.group(1), roles="AgentPool.Enroll")
            break
    p.stderr.read()
    rc = p.wait()
    tokens = os.path.join(state, str(os.getuid()), "tokens.json")
    delay = os.stat(tokens).st_mtime - approved if rc == 0 and approved else None
    results[i] = (rc, delay)


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
        for i in range(args.n):
            state = os.path.join(env.work, f"state{i}")
            os.mkdir(state, 0o700)
            confs.append((env.write_conf(f"c{i}.conf", state_dir=state), state))
        # One sign-in first, so the key cache and discovery are shared by the rest.
        warm = [None]
        one_signin(env, confs[0][0], confs[0][1], warm, 0)
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
        delays = sorted(r[1] for r in ok if r[1] is not None)
        cpu_ms = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
        print(f"sign-ins: {len(ok)} of {args.n} succeeded in {wall:.1f} s")
        print(f"provider fetches: discovery {fetches('/openid-configuration')}, "
              f"key set {fetches('/keys')} (target 1 each)")
        print(f"CPU per sign-in (CLI + helper): {cpu_ms / max(len(ok), 1):.1f} ms (target < 20)")
        print(f"peak RSS of one process: {after.ru_maxrss / 1024:.1f} MiB (target < 8)")
        if delays:
            print(f"approval to stored token: median {delays[len(delays) // 2] * 1000:.0f} ms, "
                  f"max {delays[-1] * 1000:.0f} ms (target < {INTERVAL * 1000 + 50} ms)")
    finally:
        shutil.rmtree(env.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
