#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the repository's fixtures.

Run from the repository root: `python3 fuzz/make_seeds.py` (needs `openssl` for the RS256
seed). The committed corpus is its output; it is deterministic except the RS256 seed's
signature (PKCS#1 v1.5 is deterministic too, so in practice none). File-name prefixes are
expectations checked by tests/fuzz_corpus.rs: `ok-` must be accepted, `bad-` refused; other
names (and files the fuzzer adds) are only run for panics.
"""
import base64, hashlib, hmac, json, os, shutil, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

ISS = "https://op.example.com"
CLIENT = "realm-server"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_700_000_000
SECRET = b"a-client-secret-of-reasonable-length-42"
FAR = 4_102_444_800


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture_lines(name):
    with open(os.path.join(ROOT, "tests", "fixtures", name)) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                yield line


def claims(**over):
    c = {"iss": ISS, "sub": "alice", "aud": CLIENT, "exp": FAR, "iat": NOW, "nonce": NONCE}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign_seed(header, payload):
    """A `#sign` input: the target signs it with the client secret."""
    return b"#sign\n" + json.dumps(header).encode() + b"\n" + json.dumps(payload).encode()


def id_token():
    t = "id_token"
    for i, line in enumerate(fixture_lines("malformed-tokens.txt")):
        write(t, f"bad-malformed-tokens-{i:02}", line)
    hs = {"alg": "HS256", "typ": "JWT"}
    write(t, "ok-sign-hs256", sign_seed(hs, claims()))
    write(t, "ok-sign-hs384-kid", sign_seed({"alg": "HS384", "kid": "k"}, claims()))
    write(t, "ok-sign-hs512-azp", sign_seed({"alg": "HS512"}, claims(aud=[CLIENT, "other"], azp=CLIENT)))
    write(t, "ok-sign-nbf-at-hash", sign_seed(hs, claims(nbf=NOW, at_hash="x", c_hash="y", groups=["a", "b"])))
    write(t, "bad-sign-expired", sign_seed(hs, claims(exp=NOW - 3600)))
    write(t, "bad-sign-future-iat", sign_seed(hs, claims(iat=NOW + 3600)))
    write(t, "bad-sign-nbf", sign_seed(hs, claims(nbf=NOW + 3600)))
    write(t, "bad-sign-no-nonce", sign_seed(hs, claims(nonce=None)))
    write(t, "bad-sign-wrong-nonce", sign_seed(hs, claims(nonce="other")))
    write(t, "bad-sign-iss", sign_seed(hs, claims(iss=ISS + "/")))
    write(t, "bad-sign-aud", sign_seed(hs, claims(aud=["other"])))
    write(t, "bad-sign-azp-missing", sign_seed(hs, claims(aud=[CLIENT, "other"])))
    write(t, "bad-sign-sub-empty", sign_seed(hs, claims(sub="")))
    write(t, "bad-sign-exp-float", sign_seed(hs, claims(exp=4102444800.0)))
    write(t, "bad-sign-typ-at-jwt", sign_seed({"alg": "HS256", "typ": "at+jwt"}, claims()))
    write(t, "bad-sign-crit", sign_seed({"alg": "HS256", "crit": ["exp"]}, claims()))
    write(t, "bad-sign-rs256-header", sign_seed({"alg": "RS256", "kid": "rsa1"}, claims()))
    write(t, "bad-sign-duplicate-claim",
          b'#sign\n{"alg":"HS256"}\n{"iss":"' + ISS.encode() + b'","iss":"x","sub":"a"}')
    # RS256 with the test key rsa1 (its public half is in jwks/example.json).
    header = b64(json.dumps({"alg": "RS256", "kid": "rsa1"}).encode())
    payload = b64(json.dumps(claims(sub="rs-user")).encode())
    signing_input = f"{header}.{payload}".encode()
    key = os.path.join(ROOT, "tests", "fixtures", "keys", "rsa1.pem")
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         capture_output=True, check=True).stdout
    write(t, "ok-rs256-rsa1", f"{header}.{payload}.{b64(sig)}")
    write(t, "bad-rs256-rsa1-tampered", f"{header}.{payload}x.{b64(sig)}")
    write(t, "bad-rs256-no-kid", f"{b64(json.dumps({'alg': 'RS256'}).encode())}.{payload}.{b64(sig)}")


def redirect_uri():
    t = "redirect_uri"
    for i, line in enumerate(fixture_lines("open-redirects.txt")):
        write(t, f"bad-open-redirects-{i:02}", f"{line.strip()}?code=c0de&state=st4te")
    write(t, "ok-absolute-code", "https://good.example.com/cb?code=c0de&state=st4te")
    write(t, "ok-absolute-port", "https://good.example.com:443/cb?code=c0de&state=st4te")
    write(t, "ok-path-code", "/cb?code=c0de&state=st4te")
    write(t, "ok-path-fragment", "/cb#id_token=eyJ.eyJ.sig&state=st4te&access_token=at&token_type=Bearer")
    write(t, "ok-op-error", "https://good.example.com/cb?error=access_denied&error_description=no%20way&state=st4te")
    write(t, "bad-duplicate-code", "https://good.example.com/cb?code=a&code=b&state=st4te")
    write(t, "bad-state-twice", "/cb?state=a#state=b")
    write(t, "bad-path-dot", "/x/../cb?code=c0de&state=st4te")
    write(t, "bad-path-percent", "/c%62?code=c0de&state=st4te")
    write(t, "bad-path-other", "/other?code=c0de&state=st4te")
    write(t, "bad-empty", "")


MIN_USERS = """users:
  facilitator:
    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$Iy2ZDXnjzi7xO+E5+Km8AQ$l5/SzYuTfWaQz+6X7eh3Q/CmES4gLfVg1Fl0jkpgzvE"
    privileges: [manage_oidc, manage_token]
"""
REALM = """    order: 0
    rp.client_id: kibana
    rp.client_secret: a-literal-secret
    rp.redirect_uri: https://kibana.example.com/api/security/oidc/callback
    rp.response_type: code
    op.issuer: https://op.example.com
    op.authorization_endpoint: https://op.example.com/authorize
    op.token_endpoint: https://op.example.com/token
    op.jwkset_path: ../jwks/example.json
    claims.principal: sub
    claims.groups: groups
    claim_patterns.groups: "^group-(.*)$"
"""


def config():
    t = "config"
    shutil.copy(os.path.join(ROOT, "config", "oidc-realm.yml"), os.path.join(CORPUS, t, "ok-example"))
    write(t, "ok-minimal", MIN_USERS + "realms:\n  oidc1:\n" + REALM)
    write(t, "ok-es-prefix", MIN_USERS + "".join(
        f"xpack.security.authc.realms.oidc.oidc1.{line.strip()}\n" for line in REALM.splitlines()))
    write(t, "ok-anchors-mappings-tokens", MIN_USERS + """service_tokens:
  elastic/kibana/kibana-prod:
    hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
    privileges: [manage_oidc, manage_token, manage_user_profile]
limits:
  pending_logins_per_caller: 10
  pending_logins: 100
  requests_per_caller: 0
token:
  timeout: 20m
  refresh_timeout: 24h
role_mappings:
  finance:
    enabled: true
    roles: [finance_data]
    rules:
      all:
        - field: {realm.name: oidc1}
        - field: {groups: finance-team}
realms:
  oidc1: &base
""" + REALM + """  oidc2:
    <<: *base
    order: 2
    rp.client_id: other
    rp.response_type: id_token
    allowed_clock_skew: 30s
""")
    write(t, "bad-yaml-syntax", "realms: [\n  oidc1: {")
    write(t, "ok-empty", "")
    write(t, "bad-types", MIN_USERS + "realms:\n  oidc1:\n    order: first\n    rp.client_id: [1]\n"
          "    allowed_clock_skew: -1\n    rp.redirect_uri: 'not a url'\n")
    write(t, "bad-duplicate-key", MIN_USERS + "realms:\n  oidc1:\n" + REALM + "    rp:\n      client_id: again\n")


def role_mapping():
    t = "role_mapping"
    rules = {"field": {"username": "*"}}
    write(t, "ok-finance", json.dumps({"enabled": True, "roles": ["finance_data"], "rules": {"all": [
        {"field": {"realm.name": "oidc1"}}, {"field": {"groups": "finance-team"}}]}, "metadata": {"version": 1}}))
    write(t, "ok-templates", json.dumps({"enabled": True, "role_templates": [
        {"template": {"source": "_user_{{username}}"}},
        {"template": "{\"source\":\"{{#tojson}}groups{{/tojson}}\"}", "format": "json"},
        {"template": {"source": "{{#join}}groups{{/join}}"}}], "rules": rules}))
    write(t, "ok-any-except-regex", json.dumps({"enabled": True, "roles": ["a", "b"], "rules": {"any": [
        {"field": {"dn": "*,ou=people,dc=example,dc=com"}},
        {"all": [{"field": {"metadata.oidc(email)": "/.*@example\\.com/"}},
                 {"except": {"field": {"groups": ["x", "y"]}}}]},
        {"field": {"metadata.oidc(level)": 3}}, {"field": {"dn": None}}]}}))
    write(t, "ok-disabled", json.dumps({"enabled": False, "roles": ["a"], "rules": rules}))
    write(t, "bad-missing-enabled", json.dumps({"roles": ["a"], "rules": rules}))
    write(t, "bad-except-except", json.dumps({"enabled": True, "roles": ["a"], "rules": {"all": [{"except": {"except": {}}}]}}))
    write(t, "bad-section", json.dumps({"enabled": True, "role_templates": [{"template": {"source": "{{#x}}{{/x}}"}}], "rules": rules}))
    write(t, "bad-both", json.dumps({"enabled": True, "roles": ["a"], "role_templates": [{"template": {"source": "b"}}], "rules": rules, "metadata": {"_x": 1}}))
    write(t, "bad-array", "[]")
    write(t, "bad-not-json", "{\"enabled\": tru")


def jwks():
    t = "jwks"
    with open(os.path.join(ROOT, "jwks", "example.json")) as f:
        doc = json.load(f)
    write(t, "ok-example", json.dumps(doc))
    keys = doc["keys"]
    rsa = next(k for k in keys if k["kty"] == "RSA")
    ec = next(k for k in keys if k["kty"] == "EC")
    write(t, "ok-no-kid", json.dumps({"keys": [{k: v for k, v in rsa.items() if k != "kid"}]}))
    write(t, "ok-duplicate-kid-alg", json.dumps({"keys": [dict(rsa, alg="RS256"), dict(rsa, alg="PS256"), ec]}))
    write(t, "ok-skips-some", json.dumps({"keys": [rsa, {"kty": "oct", "k": "c2VjcmV0"},
                                                  {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
                                                  dict(ec, use="enc"), {"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}))
    write(t, "bad-empty-keys", '{"keys":[]}')
    write(t, "bad-no-keys", '{"kid":"x"}')
    write(t, "bad-not-json", '{"keys":[')
    write(t, "bad-duplicate-member", '{"keys":[],"keys":[]}')
    write(t, "bad-only-oct", json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}))


def authorization():
    t = "authorization"
    write(t, "ok-basic", "Basic " + base64.b64encode(b"alice:s3cret:with:colons").decode())
    write(t, "ok-basic-lower", "basic " + base64.b64encode(b"facilitator:pw").decode())
    write(t, "bad-basic-not-b64", "Basic !!!")
    write(t, "bad-basic-no-colon", "Basic " + base64.b64encode(b"alice").decode())
    write(t, "ok-access", "Bearer ora1_" + b64(bytes(range(32))))
    write(t, "bad-refresh-as-bearer", "Bearer orr1_" + b64(bytes(range(32))))
    write(t, "bad-access-short", "Bearer ora1_abc")
    name_secret = b"elastic/kibana/fuzz:fuzz-service-token-secret"
    write(t, "ok-service-token-known",
          "Bearer " + base64.b64encode(b"\x00\x01\x00\x01" + name_secret).decode().rstrip("="))
    write(t, "ok-service-token-unknown",
          "Bearer " + base64.b64encode(b"\x00\x01\x00\x01elastic/kibana/other:secret").decode())
    write(t, "bad-service-token-bad-name",
          "Bearer " + base64.b64encode(b"\x00\x01\x00\x01Elastic:secret").decode())
    write(t, "bad-unsupported", "Negotiate YIIB")
    write(t, "bad-no-space", "Bearer")
    write(t, "bad-control", "Bearer \x01abc")


if __name__ == "__main__":
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    for f in (id_token, redirect_uri, config, role_mapping, jwks, authorization):
        os.makedirs(os.path.join(CORPUS, f.__name__), exist_ok=True)
        f()
    for d in sorted(os.listdir(CORPUS)):
        print(d, len(os.listdir(os.path.join(CORPUS, d))), file=sys.stderr)
