#!/usr/bin/python3
"""Make the demo's throw-away key set, config and tokens in a directory.

Signs with python3-cryptography, independently of poolgate's own code, so
the demo shows poolgate checking tokens it did not make itself.
"""
import base64
import json
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0b5e3c1a-7d2f-4e8b-9a61-3c4d5e6f7a8b"
CLIENT_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
NOW = 1767225600  # 2026-01-01T00:00:00Z


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def sign(key, header, claims) -> str:
    signing_input = segment(header) + "." + segment(claims)
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def claims_for(tenant):
    return {
        "aud": CLIENT_ID,
        "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
        "name": "Alice Operator", "preferred_username": "alice@contoso.example",
        "oid": "5f0c2a3e-1b4d-4c6e-8f70-9a1b2c3d4e5f", "sub": "pX3nQ-demo-subject",
        "tid": tenant, "roles": ["AgentPool.Enroll"], "ver": "2.0",
    }


def main(out):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
    jwks = {"keys": [{"kty": "RSA", "use": "sig", "kid": "demo-key-1",
                      "n": b64url(n), "e": b64url(pub.e.to_bytes(3, "big")),
                      "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"}]}
    header = {"alg": "RS256", "kid": "demo-key-1", "typ": "JWT"}
    genuine = sign(key, header, claims_for(TENANT))

    # A role added to the genuine token's payload, signature kept.
    forged_claims = dict(claims_for(TENANT), roles=["AgentPool.Enroll", "Pool.Admin"])
    h, _, s = genuine.split(".")
    tampered = h + "." + segment(forged_claims) + "." + s
    unsigned = segment({"alg": "none", "typ": "JWT"}) + "." + segment(forged_claims) + ".AAAA"
    other_tenant = sign(key, header, claims_for(OTHER_TENANT))

    files = {
        "keys.json": json.dumps(jwks, indent=2) + "\n",
        "poolgate.conf": (f"issuer = https://login.microsoftonline.com/{TENANT}/v2.0\n"
                          f"client_id = {CLIENT_ID}\n"
                          f"tenant = {TENANT}\n"
                          "required_roles = AgentPool.Enroll\n"),
        "genuine.jwt": genuine + "\n",
        "tampered.jwt": tampered + "\n",
        "unsigned.jwt": unsigned + "\n",
        "other-tenant.jwt": other_tenant + "\n",
        "now": f"{NOW}\n",
    }
    for name, text in files.items():
        path = os.path.join(out, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv[1])
