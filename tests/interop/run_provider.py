#!/usr/bin/python3
"""Run oidc-provider (provider.mjs) on loopback TLS beside a command.

    /usr/bin/python3 run_provider.py [NAME=VALUE...] -- COMMAND [ARGS...]

The same contract as tests/fixtures/dev_idp.py: TLS files come from a
throw-away CA (tests/fixtures/testca.py), the provider is started with
node, and COMMAND runs with, in its environment:

    PG_IDP_ISSUER           https://localhost:PORT
    PG_IDP_CLIENT_ID        public client whose id_tokens are RS256
    PG_IDP_CLIENT_ID_ES256  public client whose id_tokens are ES256
    PG_IDP_RESOURCE         the resource (RFC 8707) whose JWT access tokens carry the roles
    PG_IDP_RESOURCE_SCOPE   the scope of that resource
    PG_IDP_TENANT           the tid claim of every user token
    PG_IDP_CONTROL          https://localhost:PORT/_test (test controls)
    PG_IDP_USER             an account with the role AgentPool.Enroll
    PG_IDP_USER_NOROLE      an account without it
    PG_IDP_PASSWORD         both accounts' password
    PG_IDP_FLAVOUR          oidc-provider
    PG_TEST_CA              the CA that signed the provider's certificate
    PG_TEST_OTHER_CA        a CA that signed nothing

plus the NAME=VALUE settings given before `--` (for COMMAND only).  When
tests/interop/node_modules lacks the pinned oidc-provider, `npm ci` installs the pinned
packages from package-lock.json first; without the npm registry that fails
with a clear message (exit 2).  Exits with COMMAND's status.
"""
import json
import os
import sys
import secrets
import shutil
import signal
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import testca  # noqa: E402

NODE = os.environ.get("PG_NODE", "/usr/bin/node")
NPM = os.environ.get("PG_NPM", "npm")
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
STARTUP_TIMEOUT = 30


def die(msg):
    print(f"run_provider.py: {msg}", file=sys.stderr)
    sys.exit(2)


def installed_version():
    """oidc-provider's version in node_modules, when npm finished installing it."""
    try:
        with open(os.path.join(HERE, "node_modules", "oidc-provider", "package.json")) as f:
            version = json.load(f)["version"]
        # npm writes its hidden lockfile last: without it the install is partial.
        return version if os.path.exists(os.path.join(HERE, "node_modules",
                                                      ".package-lock.json")) else None
    except (OSError, ValueError, KeyError):
        return None


def ensure_packages():
    with open(os.path.join(HERE, "package.json")) as f:
        pinned = json.load(f)["dependencies"]["oidc-provider"]
    if installed_version() == pinned:
        return
    if not shutil.which(NPM):
        die(f"node_modules is missing and '{NPM}' is not installed (apt-get install npm)")
    print("run_provider.py: installing the pinned packages (npm ci)", file=sys.stderr)
    try:
        p = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--fetch-retries=1",
                            "--fetch-timeout=30000"], cwd=HERE, capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        die("npm ci did not finish in 300 s: is the npm registry reachable?")
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-8:])
        die(f"npm ci failed (exit {p.returncode}); the npm registry may be unreachable "
            f"and node_modules is not present:\n{tail}")
    if installed_version() != pinned:
        die(f"npm ci did not install oidc-provider {pinned}")


def start_node(files, env):
    proc = subprocess.Popen([NODE, os.path.join(HERE, "provider.mjs"), files["server.pem"],
                             files["server.key"]], cwd=HERE, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = {}

    def read_issuer():
        found["line"] = proc.stdout.readline().strip()

    t = threading.Thread(target=read_issuer, daemon=True)
    t.start()
    t.join(STARTUP_TIMEOUT)
    issuer = found.get("line", "")
    if not issuer.startswith("https://localhost:"):
        proc.kill()
        err = proc.stderr.read() if proc.poll() is not None else ""
        die(f"the provider did not start (no issuer line within {STARTUP_TIMEOUT} s): {err}")

    # Keep draining both pipes; pass the provider's complaints on (less its
    # start-up warnings about development defaults).
    def drain(pipe, out):
        for line in pipe:
            if "oidc-provider WARNING" in line or "oidc-provider NOTICE" in line:
                continue
            if os.environ.get("PG_IDP_VERBOSE") or "provider.mjs" in line or "Error" in line:
                out.write(f"[provider] {line}")
                out.flush()

    threading.Thread(target=drain, args=(proc.stdout, sys.stderr), daemon=True).start()
    threading.Thread(target=drain, args=(proc.stderr, sys.stderr), daemon=True).start()
    return proc, issuer


def main(argv):
    ensure_packages()
    # SIGTERM (a test runner's timeout) unwinds too, so node is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    node = {}

    def start(files):
        work = os.path.dirname(files["ca.pem"])
        password = secrets.token_urlsafe(12)
        node_env = {"PATH": "/usr/bin:/bin", "HOME": work, "NODE_ENV": "test",
                    "PG_IDP_PASSWORD": password, "PG_IDP_TENANT": TENANT}
        node["proc"], issuer = start_node(files, node_env)
        return dict(PG_IDP_ISSUER=issuer, PG_IDP_CLIENT_ID="poolgate-rs256",
                    PG_IDP_CLIENT_ID_ES256="poolgate-es256",
                    PG_IDP_RESOURCE="https://enroll.poolgate.test",
                    PG_IDP_RESOURCE_SCOPE="agentpool.enroll", PG_IDP_TENANT=TENANT,
                    PG_IDP_CONTROL=f"{issuer}/_test", PG_IDP_USER="olga",
                    PG_IDP_USER_NOROLE="nina", PG_IDP_PASSWORD=password,
                    PG_IDP_FLAVOUR="oidc-provider", PG_TEST_OTHER_CA=files["other-ca.pem"])

    def stop():
        proc = node.get("proc")
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return testca.run_beside(argv, start, stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
