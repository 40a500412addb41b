#!/usr/bin/python3
"""poolgate's generic-OIDC mode against oidc-provider (the OpenID Certified
Node implementation, pinned in package-lock.json).

    run_provider.py -- /usr/bin/python3 test_interop.py \\
        --poolgate build/dev/helper/poolgate --helper build/dev/helper/poolgate-helper \\
        --module build/dev/pam/pam_poolgate.so

The operator is played strictly through the provider's web pages
(browser.py); poolgate is configured with issuer, client_id and ca_file only
(discovery).  Prints `interop: N passed, N failed` and exits 1 on a failure.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

import argparse  # noqa: E402
import base64  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import system_pam  # noqa: E402
from cli_login import Env  # noqa: E402
from idpctl import Check, control  # noqa: E402

import browser  # noqa: E402

ISSUER = os.environ["PG_IDP_ISSUER"]
CLIENT_RS = os.environ["PG_IDP_CLIENT_ID"]
CLIENT_ES = os.environ["PG_IDP_CLIENT_ID_ES256"]
RESOURCE = os.environ["PG_IDP_RESOURCE"]
RESOURCE_SCOPE = os.environ["PG_IDP_RESOURCE_SCOPE"]
USER = os.environ["PG_IDP_USER"]
NOROLE = os.environ["PG_IDP_USER_NOROLE"]
PASSWORD = os.environ["PG_IDP_PASSWORD"]
ROLE = "AgentPool.Enroll"
PROMPT = re.compile(r"open (https://\S+) in a web browser and enter the code (\S+)", re.I)
SKIPPED = []
OWN_DEVICE_CODES = set()  # the test's own client's, left out of the polling check


VERBOSE = False


def trace(what, text):
    """With -v, show what poolgate said (evidence for a report)."""
    if VERBOSE:
        print(f"     | {what}: " + "\n     | ".join(text.strip().splitlines()))
        sys.stdout.flush()


def skip(name, why):
    SKIPPED.append(name)
    print(f"SKIP {name}: {why}")
    sys.stdout.flush()


# ---- the provider's side --------------------------------------------------------

def provider_log():
    return json.loads(control("log"))


def jwks_fetches():
    return sum(1 for e in provider_log() if e["kind"] == "jwks")


def discovery_fetches():
    return sum(1 for e in provider_log() if e["kind"] == "discovery")


def configure(**knobs):
    return json.loads(control("config", **{k: str(v) for k, v in knobs.items()}))


def jwt_part(token, i):
    seg = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def is_jwt(token):
    try:
        return len(token.split(".")) == 3 and "alg" in jwt_part(token, 0)
    except (ValueError, UnicodeDecodeError):
        return False


def sha16(value):
    """The provider's log names device codes and refresh tokens by this hash."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class Client:
    """An RFC 8707 client of our own, to show what the provider does for one
    that sends `resource` (poolgate cannot), and to replay refresh tokens."""

    def __init__(self):
        self.ctx = ssl.create_default_context(cafile=os.environ["PG_TEST_CA"])
        with urllib.request.urlopen(f"{ISSUER}/.well-known/openid-configuration",
                                    context=self.ctx, timeout=10) as r:
            self.meta = json.load(r)

    def post(self, url, fields):
        req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def token(self, **fields):
        return self.post(self.meta["token_endpoint"], fields)

    def device_sign_in(self, client_id, scope, user, resource=None):
        fields = {"client_id": client_id, "scope": scope}
        if resource:
            fields["resource"] = resource
        st, da = self.post(self.meta["device_authorization_endpoint"], fields)
        if st != 200:
            return st, da
        OWN_DEVICE_CODES.add(sha16(da["device_code"]))
        browser.sign_in(da["verification_uri"], da["user_code"], user, PASSWORD)
        grant = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                 "client_id": client_id, "device_code": da["device_code"]}
        if resource:
            grant["resource"] = resource
        return self.token(**grant)


# ---- poolgate's side ---------------------------------------------------------------

class InteropEnv(Env):
    """cli_login.Env with the operator played at the provider's web pages."""

    def write_conf(self, name="poolgate.conf", mode=0o600, **over):
        over.setdefault("qr", "off")
        return super().write_conf(name, mode, **over)

    def login(self, user=USER, deny_at=None, conf=None, delay=0.0, extra=()):
        """`poolgate login`; the operator reads the address and code from
        its prompt and signs in (or declines) in a browser of their own."""
        p = subprocess.Popen(self.cmd("login", *extra, conf=conf), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err, operator = [], None
        for line in p.stderr:
            err.append(line)
            m = PROMPT.search(line)
            if m:
                time.sleep(delay)
                try:
                    operator = browser.sign_in(m.group(1), m.group(2), user, PASSWORD,
                                               deny_at=deny_at)
                except Exception as e:  # noqa: BLE001 - reported as the check's detail
                    operator = {"outcome": f"operator failed: {e}"}
                    p.kill()
                break
        rest = p.stderr.read()
        out = p.stdout.read()
        p.wait(timeout=120)
        self.last_operator = operator
        return p.returncode, out, "".join(err) + rest


def poll_schedule(log):
    """RFC 8628 §3.2/§3.5 on the provider's log: for every device code, each
    token request at least `interval` seconds after the previous request
    (the device authorization counts as the first), the interval being the
    advertised one or 5 s, raised by 5 s after every slow_down.  Returns
    (violations, number of polls, number of slow_down answers)."""
    issued = {e["issued_device_code"]: e for e in log
              if e["kind"] == "device_authorization" and e.get("issued_device_code")}
    polls = {}
    for e in log:
        if e["kind"] == "token" and e.get("grant_type", "").endswith(":device_code"):
            polls.setdefault(e["device_code"], []).append(e)
    bad, count, slow = [], 0, 0
    for code, seq in polls.items():
        auth = issued.get(code)
        if auth is None or code in OWN_DEVICE_CODES:
            continue  # a device code of the test's own client
        interval = auth.get("interval") or 5
        prev = auth["t"]
        for e in sorted(seq, key=lambda x: x["t"]):
            count += 1
            if e["t"] - prev < interval - 0.05:
                bad.append(f"{code}: {e['t'] - prev:.2f} s after the previous request, "
                           f"interval {interval} s; requests: device authorization at "
                           f"{auth['t']:.2f}, polls " + ", ".join(
                               f"{x['t']:.2f} ({x.get('error') or x['status']})"
                               for x in sorted(seq, key=lambda x: x["t"])))
            if e.get("error") == "slow_down":
                slow += 1
                interval += 5
            prev = e["t"]
    return bad, count, slow


# ---- PAM, through pamtester under pam_wrapper ---------------------------------

class Pam:
    def __init__(self, module, helper, env, work):
        self.module, self.helper, self.env = module, helper, env
        self.svcdir = os.path.join(work, "pam.d")
        os.makedirs(self.svcdir, exist_ok=True)
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()

    def service(self, name, conf):
        mod = f"{os.path.abspath(self.module)} config={conf} helper={os.path.abspath(self.helper)}"
        with open(os.path.join(self.svcdir, name), "w") as f:
            f.write(f"auth required {mod} prompt=info\naccount required {mod}\n")

    def run(self, service, user=USER, deny_at=None, timeout=120):
        """pamtester on a pty (so its conversation is shown at once); the
        operator acts when the code appears.  Returns (status, output, operator)."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C", "TERM": "dumb",
               "LD_PRELOAD": "libpam_wrapper.so", "PAM_WRAPPER": "1",
               "PAM_WRAPPER_SERVICE_DIR": self.svcdir,
               # (pam_wrapper 1.1.4 reads the second name; later versions the first)
               "PAM_WRAPPER_DISABLE_DEEPBIND": "1", "UID_WRAPPER_DISABLE_DEEPBIND": "1"}
        argv = ["/usr/bin/pamtester", "-v", service, self.user, "authenticate", "acct_mgmt"]
        seen = {}

        def act(text):
            m = PROMPT.search(text)
            if m:
                try:
                    seen["operator"] = browser.sign_in(m.group(1), m.group(2), user, PASSWORD,
                                                       deny_at=deny_at)
                except Exception as e:  # noqa: BLE001
                    seen["operator"] = {"outcome": f"operator failed: {e}"}
            return m is not None

        status, out = system_pam.run_pty(argv, None, timeout=timeout, env=env, on_output=act)
        return status, out, seen.get("operator")


def wait_expired(token, skew=0):
    """Sleep until the token's exp (plus skew) has passed for poolgate too.
    poolgate compares with time(), whose vDSO clock is the coarse one: it
    can still read the old second a tick after Python's clock has turned,
    so waking exactly at exp + 1 races the check (the id_token passes auth
    and fails account a few milliseconds later).  Hence the margin."""
    left = jwt_part(token, 1)["exp"] + skew + 1.3 - time.time()
    if left > 60:
        raise RuntimeError(f"the token expires in {left:.0f} s; a short-lived one was expected")
    if left > 0:
        time.sleep(left)


# ---- the checks -------------------------------------------------------------------

def key_set_media_type(env, check):
    """oidc-provider serves jwks_uri as application/jwk-set+json (RFC 7517
    §8.5).  When poolgate refuses that, record the failure and let the
    provider answer application/json for the rest of the run, so that the
    other checks still say something."""
    rc, out, err = env.login(USER)
    check("the key set as oidc-provider serves it (Content-Type application/jwk-set+json, "
          "RFC 7517 §8.5) is accepted", rc == 0, f"exit {rc}: {err.strip().splitlines()[-1:]}")
    if rc != 0 and "jwk-set+json" in err:
        configure(jwks_content_type="application/json")
        print("NOTE the provider serves its key set as application/json from here on "
              "(poolgate accepts no other media type)")
        sys.stdout.flush()


def basic(env, check):
    discovered, fetched = discovery_fetches(), jwks_fetches()
    rc, out, err = env.login(USER)
    check("login (discovery only: issuer, client_id, ca_file)",
          rc == 0 and "signed in as Olga Operator" in err, f"{rc} {err!r} {env.last_operator}")
    check("the operator went through the provider's pages",
          (env.last_operator or {}).get("pages") ==
          ["Sign-in", "Device Login Confirmation", "Sign in", "Authorize", "Sign-in Success"],
          env.last_operator)
    tokens = env.stored()
    check("a full set is stored (offline_access honoured for the device grant)",
          all(tokens.get(k) for k in ("id_token", "access_token", "refresh_token")), list(tokens))
    head = jwt_part(tokens["id_token"], 0)
    check("the id_token is RS256 for the RS256 client", head.get("alg") == "RS256", head)
    rc, out, err = env.run("status", "--json")
    ident = json.loads(out) if rc == 0 and out else {}
    check("status --json", rc == 0 and ident.get("roles") == [ROLE] and
          ident.get("tid") == os.environ["PG_IDP_TENANT"] and ident.get("iss") == ISSUER and
          ident.get("name") == "Olga Operator", f"{rc} {out!r} {err!r}")
    tok = os.path.join(env.work, "id.jwt")
    with open(tok, "w") as f:
        f.write(tokens["id_token"] + "\n")
    rc, out, err = env.run("validate", "--token", tok)
    ident = json.loads(out) if rc == 0 and out else {}
    check("validate --token <stored id_token>",
          rc == 0 and ident.get("aud") == [CLIENT_RS] and ident.get("roles") == [ROLE],
          f"{rc} {out!r} {err!r}")
    check("discovery read once in all (by the first sign-in); the cached key set serves this "
          "sign-in and validate with no new fetch",
          discovery_fetches() == 1 and discovered == 1 and fetched == 1 and
          jwks_fetches() == fetched, (discovered, discovery_fetches(), fetched, jwks_fetches()))
    return tok


def declines(env, check):
    before = env.stored()
    for where in ("confirm", "consent"):
        rc, out, err = env.login(USER, deny_at=where)
        check(f"declined at the provider's {where} page: exit 1, 'declined'",
              rc == 1 and "declined" in err and (env.last_operator or {}).get("outcome") ==
              "declined", f"{rc} {err!r} {env.last_operator}")
    check("declined sign-ins leave the stored set as it was", env.stored() == before)
    rc, out, err = env.login(NOROLE)
    check("an operator without the role is refused",
          rc == 1 and "invalid token: roles:" in err, f"{rc} {err!r}")
    check("... and the stored set is left as it was", env.stored() == before)


def roles(env, check, tok):
    realm = env.write_conf("realm.conf", roles_claim="realm_access.roles")
    rc, out, err = env.run("validate", "--token", tok, conf=realm)
    check("roles_claim = realm_access.roles", rc == 0 and json.loads(out)["roles"] == [ROLE],
          f"{rc} {out!r} {err!r}")
    any_ = env.write_conf("any.conf", roles_claim="realm_access.roles",
                          required_roles="Pool.Admin " + ROLE, roles_match="any")
    rc, out, err = env.run("validate", "--token", tok, conf=any_)
    check("roles_match = any, one of two roles held", rc == 0, f"{rc} {err!r}")
    all_ = env.write_conf("all.conf", roles_claim="realm_access.roles",
                          required_roles="Pool.Admin " + ROLE, roles_match="all")
    rc, out, err = env.run("validate", "--token", tok, conf=all_)
    check("roles_match = all, one of two roles held: refused",
          rc == 1 and "invalid token: roles:" in err, f"{rc} {err!r}")
    rc, out, err = env.login(USER, conf=any_)
    check("login with realm_access.roles and roles_match = any", rc == 0, f"{rc} {err!r}")
    rc, out, err = env.login(NOROLE, conf=any_)
    check("... an operator with neither role is refused",
          rc == 1 and "invalid token: roles:" in err, f"{rc} {err!r}")


def es256(env, check):
    es = env.write_conf("es256.conf", client_id=CLIENT_ES, algorithms="ES256")
    rc, out, err = env.login(USER, conf=es)
    check("ES256 client with algorithms = ES256: login", rc == 0, f"{rc} {err!r}")
    tokens = env.stored()
    head = jwt_part(tokens["id_token"], 0)
    check("the ES256 client's id_token is ES256", head.get("alg") == "ES256", head)
    tok = os.path.join(env.work, "es.jwt")
    with open(tok, "w") as f:
        f.write(tokens["id_token"] + "\n")
    rc, out, err = env.run("validate", "--token", tok, conf=es)
    check("ES256 id_token validates with algorithms = ES256", rc == 0, f"{rc} {err!r}")
    rs_only = env.write_conf("es-rs.conf", client_id=CLIENT_ES, algorithms="RS256")
    rc, out, err = env.run("validate", "--token", tok, conf=rs_only)
    check("the same ES256 token is refused with algorithms = RS256",
          rc == 1 and "invalid token: algorithm:" in err, f"{rc} {err!r}")
    before = env.stored()
    rc, out, err = env.login(USER, conf=rs_only)
    check("an ES256 sign-in is refused with algorithms = RS256",
          rc == 1 and "invalid token: algorithm:" in err, f"{rc} {err!r}")
    check("... and leaves the stored set as it was", env.stored() == before)


def access_token(env, check):
    scope = f"openid profile offline_access {RESOURCE_SCOPE}"
    at_conf = env.write_conf("at.conf", validate="access_token", audience=RESOURCE, scope=scope,
                             resource=RESOURCE)

    # 1. What an RFC 8707 client gets: the provider is fine with poolgate's
    #    verifier; only the request differs.
    client = Client()
    st, answer = client.device_sign_in(CLIENT_RS, scope, USER, resource=RESOURCE)
    at = answer.get("access_token", "")
    claims = jwt_part(at, 1) if is_jwt(at) else {}
    check("RFC 8707 client (resource=...): the provider issues a JWT access token for the "
          "resource", st == 200 and claims.get("aud") == RESOURCE and
          claims.get("roles") == [ROLE], f"{st} {answer if st != 200 else claims}")
    if at:
        path = os.path.join(env.work, "at.jwt")
        with open(path, "w") as f:
            f.write(at + "\n")
        rc, out, err = env.run("validate", "--token", path, conf=at_conf)
        check("poolgate validate accepts that access token (typ at+jwt, aud = resource)",
              rc == 0 and json.loads(out)["aud"] == [RESOURCE], f"{rc} {out!r} {err!r}")

    # 2. poolgate itself, with `resource` set, against the provider's
    #    default (RFC 8707) policy.
    before = env.stored()
    rc, out, err = env.login(USER, conf=at_conf)
    auth = [e for e in provider_log() if e["kind"] == "device_authorization"][-1]
    check("validate = access_token, audience = resource = the resource: poolgate signs in, "
          "sending the RFC 8707 resource indicator",
          rc == 0 and auth.get("resource") == RESOURCE,
          f"exit {rc}; poolgate said {err.strip().splitlines()[-1:]!r}; the device "
          f"authorization request carried scope={auth.get('scope')!r} "
          f"resource={auth.get('resource')!r}")
    if rc != 0:
        check("... the refused sign-in leaves the stored set as it was", env.stored() == before)
    at = env.stored().get("access_token", "") if rc == 0 else ""
    claims = jwt_part(at, 1) if is_jwt(at) else {}
    check("... the stored access token is a JWT for the resource",
          claims.get("aud") == RESOURCE, claims or at[:12])
    rc, out, err = env.run("status", conf=at_conf)
    check("... status verifies it", rc == 0, f"{rc} {err!r}")

    # 3. With the provider mapping the scope to the resource (its documented
    #    defaultResource/useGrantedResource helpers, as Entra maps .default).
    configure(resource_policy="scope")
    try:
        rc, out, err = env.login(USER, conf=at_conf)
        check("validate = access_token with the provider's scope->resource policy: login",
              rc == 0 and "signed in as Olga Operator" in err, f"{rc} {err!r}")
        at = env.stored().get("access_token", "")
        claims = jwt_part(at, 1) if is_jwt(at) else {}
        check("... the stored access token is a JWT for the resource",
              claims.get("aud") == RESOURCE and "realm_access" in claims, claims or at[:12])
        rc, out, err = env.run("status", conf=at_conf)
        check("... status verifies it", rc == 0, f"{rc} {err!r}")
    finally:
        configure(resource_policy="strict")


def polling(env, check):
    rc, out, err = env.login(USER, delay=11)
    check("login with the operator taking 11 s (several pending polls)", rc == 0,
          f"{rc} {err!r}")
    auths = [e for e in provider_log() if e["kind"] == "device_authorization"]
    check("oidc-provider's device authorization answer has no `interval` (RFC 8628 §3.2: "
          "the client must then use 5 s)", all("interval" not in e["answer_members"]
                                                for e in auths), auths[-1:])


def rotation(env, check, old_tok):
    fetched = jwks_fetches()
    kid = json.loads(control("rotate", now="1"))["kid"]  # (a field makes it a POST)
    # poolgate fetches the key set for an unknown kid at most every five minutes
    # (poolgate(1)); make the last fetch look ten minutes old, as cli_login does.
    env.age_key_cache(600)
    rc, out, err = env.login(USER)
    check("login after the provider rotated its RS256 key", rc == 0, f"{rc} {err!r}")
    head = jwt_part(env.stored()["id_token"], 0)
    check("... the new id_token is signed with the new key", head.get("kid") == kid,
          (head, kid))
    check("... exactly one extra key-set fetch", jwks_fetches() == fetched + 1,
          (fetched, jwks_fetches()))
    tok = os.path.join(env.work, "rotated.jwt")
    with open(tok, "w") as f:
        f.write(env.stored()["id_token"] + "\n")
    rc, out, err = env.run("validate", "--token", tok)
    check("... validate (cached keys) accepts the new token", rc == 0, f"{rc} {err!r}")
    rc, out, err = env.run("validate", "--token", old_tok)
    check("... and a token of the old key, still published", rc == 0, f"{rc} {err!r}")
    rc, out, err = env.run("status")
    check("... status, with no further fetch", rc == 0 and jwks_fetches() == fetched + 1,
          f"{rc} {err!r} {jwks_fetches()}")


def pam(env, check, args):
    pam = Pam(args.module, env.real_helper, env, env.work)
    conf = env.write_conf("pam.conf", clock_skew="0")
    pam.service("pg-interop", conf)
    state = os.path.join(env.state, str(os.getuid()))
    shutil.rmtree(state, ignore_errors=True)

    rc, out, op = pam.run("pg-interop", USER)
    check("pamtester: a sign-in with the role authenticates and passes account",
          rc == 0 and "enter the code" in out and (op or {}).get("outcome") == "approved",
          f"{rc} {out!r} {op}")
    rc, out, op = pam.run("pg-interop", USER)
    check("pamtester: the stored token lets the next one in without a code",
          rc == 0 and "enter the code" not in out, f"{rc} {out!r}")
    shutil.rmtree(state, ignore_errors=True)
    rc, out, op = pam.run("pg-interop", NOROLE)
    check("pamtester: an operator without the role is refused",
          rc != 0 and "enter the code" in out and (op or {}).get("outcome") == "approved",
          f"{rc} {out!r} {op}")
    rc, out, op = pam.run("pg-interop", USER, deny_at="login")
    check("pamtester: a sign-in cancelled at the login page is refused", rc != 0,
          f"{rc} {out!r} {op}")

    # Silent refresh with rotation: short-lived id_tokens, clock_skew = 0.
    configure(id_token_ttl=8)
    try:
        rc, out, op = pam.run("pg-interop", USER)
        check("pamtester: sign-in (8 s id_token)", rc == 0, f"{rc} {out!r} {op}")
        rt1 = env.stored()["refresh_token"]
        wait_expired(env.stored()["id_token"])
        rc, out, op = pam.run("pg-interop", USER)
        log = provider_log()
        used = [e for e in log if e["kind"] == "token" and e.get("refresh_token") == sha16(rt1)]
        check("pamtester: an expired id_token is refreshed silently (no code)",
              rc == 0 and "enter the code" not in out and used and used[-1]["status"] == 200,
              f"{rc} {out!r} {used}")
        rt2 = env.stored()["refresh_token"]
        check("... the provider rotated the refresh token and poolgate stored the new one",
              rt2 != rt1 and used and used[-1].get("issued_refresh_token") == sha16(rt2))

        # Someone replays the old refresh token: the provider refuses it and, as
        # oidc-provider does on reuse, revokes the whole grant.
        client = Client()
        st, answer = client.token(grant_type="refresh_token", client_id=CLIENT_RS,
                                  refresh_token=rt1)
        check("a replayed (rotated) refresh token is refused with invalid_grant",
              st == 400 and answer.get("error") == "invalid_grant", f"{st} {answer}")

        # poolgate's own refresh token died with the grant: its next refresh is
        # refused, and the gate falls back to a sign-in.
        wait_expired(env.stored()["id_token"])
        rc, out, op = pam.run("pg-interop", USER)
        used = [e for e in provider_log() if e["kind"] == "token" and
                e.get("refresh_token") == sha16(rt2)]
        check("pamtester: the provider refuses poolgate's refresh (grant revoked after reuse)",
              used and used[-1].get("error") == "invalid_grant", used)
        trace("pamtester after the refused refresh", out)
        check("pamtester: ... poolgate falls back to a device sign-in, which succeeds",
              rc == 0 and "enter the code" in out and (op or {}).get("outcome") == "approved",
              f"{rc} {out!r} {op}")

        # poolgate itself replays: a thief uses the stored refresh token first.
        rt3 = env.stored()["refresh_token"]
        st, answer = client.token(grant_type="refresh_token", client_id=CLIENT_RS,
                                  refresh_token=rt3)
        check("(a thief redeems poolgate's refresh token first)", st == 200, f"{st} {answer}")
        wait_expired(env.stored()["id_token"])
        rc, out, op = pam.run("pg-interop", USER)
        used = [e for e in provider_log() if e["kind"] == "token" and
                e.get("refresh_token") == sha16(rt3)]
        check("pamtester: poolgate's replay of the already-used token is refused",
              len(used) == 2 and used[-1].get("error") == "invalid_grant", used)
        check("pamtester: ... and poolgate falls back to a sign-in, which succeeds",
              rc == 0 and "enter the code" in out, f"{rc} {out!r} {op}")
    finally:
        configure(id_token_ttl=3600)

    # The CLI after a refused refresh: a clear status, and login still works.
    client = Client()
    rt = env.stored()["refresh_token"]
    client.token(grant_type="refresh_token", client_id=CLIENT_RS, refresh_token=rt)
    client.token(grant_type="refresh_token", client_id=CLIENT_RS, refresh_token=rt)  # revokes
    before = env.stored()["id_token"]
    wait_expired(before)
    rc, out, err = env.run("status", conf=conf)
    trace("status with a dead refresh token", err)
    # (What the store held before and after, for a failure's report: the
    # store must not change here, as nothing of poolgate's runs.)
    after = jwt_part(env.stored()["id_token"], 1)
    check("status with an expired token and a dead refresh token: exit 1, clear message",
          rc == 1 and "invalid token: expired" in err and "Traceback" not in err and
          len(err.strip().splitlines()) <= 3,
          f"{rc} {err!r}; now {time.time():.1f}, stored exp before {jwt_part(before, 1)['exp']}"
          f" after {after['exp']} (iat {after.get('iat')})")
    rc, out, err = env.login(USER, conf=conf)
    check("poolgate login after the provider refused the refresh token", rc == 0,
          f"{rc} {err!r}")

    # validate = access_token through PAM, refreshed: with the provider's
    # scope->resource policy (poolgate sends no `resource`, see access_token()).
    at_conf = env.write_conf("pam-at.conf", clock_skew="0", validate="access_token",
                             audience=RESOURCE,
                             scope=f"openid profile offline_access {RESOURCE_SCOPE}")
    pam.service("pg-interop-at", at_conf)
    configure(resource_policy="scope", access_token_ttl=8)
    try:
        rc, out, op = pam.run("pg-interop-at", USER)
        check("pamtester, validate = access_token (scope->resource policy): sign-in",
              rc == 0 and "enter the code" in out, f"{rc} {out!r} {op}")
        wait_expired(env.stored()["access_token"])
        rc, out, op = pam.run("pg-interop-at", USER)
        at = env.stored().get("access_token", "")
        claims = jwt_part(at, 1) if is_jwt(at) else {}
        check("pamtester: ... the expired access token is refreshed silently, for the resource",
              rc == 0 and "enter the code" not in out and claims.get("aud") == RESOURCE,
              f"{rc} {out!r} {claims or at[:12]}")
    finally:
        configure(resource_policy="strict", access_token_ttl=3600)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--poolgate", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    check = Check(verbose=args.verbose)
    env = InteropEnv(os.path.abspath(args.poolgate), os.path.abspath(args.helper))
    try:
        key_set_media_type(env, check)
        tok = basic(env, check)
        declines(env, check)
        roles(env, check, tok)
        es256(env, check)
        access_token(env, check)
        polling(env, check)
        rotation(env, check, tok)
        if os.geteuid() == 0 and os.path.exists("/usr/bin/pamtester"):
            pam(env, check, args)
        else:
            skip("PAM through pamtester", "needs root and /usr/bin/pamtester")
        bad, polls, slow = poll_schedule(provider_log())
        check(f"every device-code poll ({polls}) honours the interval (5 s by default, "
              "+5 s after each slow_down)", polls > 0 and not bad, bad[:5])
        if slow == 0:
            skip("slow_down", "oidc-provider 8.8.1 never answers slow_down (it defines the "
                 "error but no grant throws it), so poolgate's back-off cannot be seen here")
    finally:
        shutil.rmtree(env.work, ignore_errors=True)
    print(f"interop: {check.passed} passed, {check.failed} failed"
          + (f" ({len(SKIPPED)} skipped)" if SKIPPED else ""))
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
