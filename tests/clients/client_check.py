#!/usr/bin/env python3
"""Elasticsearch's official Python client, stock, against oidc-realm.

Run by tests/clients.rs with the python of target/clients/venv-es8 or venv-es9 (see
setup.sh). Every client is built with default options: only the node URL and credentials.

Environment:
  OIDC_REALM_URL  the server, e.g. http://127.0.0.1:40123
  CONTROL_URL     the harness's control server (unused here; kibana_login.mjs moves time)
  SERVICE_TOKEN   bearer token of the service account elastic/kibana/kibana-test
  CLIENT_CHECK_VERBOSE=1  print every response body

Each group of calls runs even when an earlier group failed (a group stops at its first
failure, as its later calls depend on the earlier ones). Exit status 0 only when every call
passed; otherwise every failure is printed, naming the call and the client version.
"""

import http.client
import os
import re
import sys
import traceback
import urllib.parse

import elasticsearch
from elasticsearch import ApiError, Elasticsearch

VERSION = f"elasticsearch-py {elasticsearch.__versionstr__}"
URL = os.environ.get("OIDC_REALM_URL", "")
SERVICE_TOKEN = os.environ.get("SERVICE_TOKEN", "")
# CLIENT_CHECK_VERBOSE=1: print every response body.
VERBOSE = os.environ.get("CLIENT_CHECK_VERBOSE", "") not in ("", "0")

# The users tests/clients.rs configures (bcrypt cost 4, test-only passwords).
FACILITATOR = ("facilitator", "facilitator-password")
ADMIN = ("admin", "admin-password")
ENDUSER = ("enduser", "enduser-password")
REALM = "oidc1"
# tests/common/fake_op.rs: REDIRECT_URI and the default user.
CALLBACK = "https://kibana.example.org/api/security/oidc/callback"
OIDC_USER = "00u1abcd"
FILE_REALM = {"name": "default_file", "type": "file"}


class CheckFailed(Exception):
    pass


# Failures that do not stop their group (the product header of an error answer).
HEADER_FAILURES = []


def describe(e):
    if isinstance(e, ApiError):
        headers = dict(e.meta.headers) if e.meta is not None else {}
        return f"HTTP {e.meta.status}: {e.body!r} (response headers: {headers})"
    return f"{type(e).__name__}: {e}"


def call(name, fn):
    """Run one client call; any exception becomes a failure naming the call."""
    try:
        resp = fn()
    except CheckFailed:
        raise
    except Exception as e:  # noqa: BLE001 - every failure is reported
        raise CheckFailed(f"{name}: raised {describe(e)}") from e
    body = resp.body if hasattr(resp, "body") else resp
    print(f"[{VERSION}]   call {name}" + (f" -> {body!r}" if VERBOSE else ""))
    return body


def expect(name, cond, what, body):
    if not cond:
        raise CheckFailed(f"{name}: expected {what}; response body: {body!r}")


def expect_eq(name, actual, expected, what, body):
    expect(name, actual == expected, f"{what} == {expected!r}, got {actual!r}", body)


def expect_status(name, fn, status):
    """The call must raise ApiError with this HTTP status; returns the error."""
    try:
        resp = fn()
    except ApiError as e:
        if e.meta.status != status:
            raise CheckFailed(f"{name}: expected HTTP {status}, got {describe(e)}") from e
        # The product header as Elasticsearch sends it: on every answer but 401 and 403, where
        # RestResponse.filterHeaders strips it (the clients only insist on it for 2xx).
        # Recorded, not raised: the group goes on.
        product = e.meta.headers.get("x-elastic-product")
        want = None if status in (401, 403) else "Elasticsearch"
        if product != want:
            HEADER_FAILURES.append(
                f"{name}: expected X-Elastic-Product {want!r} on the {status} answer (as Elasticsearch), "
                f"got {product!r}; response headers: {dict(e.meta.headers)}"
            )
        return e
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"{name}: expected HTTP {status}, raised {describe(e)}") from e
    raise CheckFailed(f"{name}: expected HTTP {status}, got success: {getattr(resp, 'body', resp)!r}")


def is_token(v):
    return isinstance(v, str) and len(v) >= 20


def client(**auth):
    # Default options: node URL and credentials only.
    return Elasticsearch(URL, **auth)


facilitator = client(basic_auth=FACILITATOR)
admin = client(basic_auth=ADMIN)


# --------------------------------------------------------------------------------------------


def check_info():
    n = "info()"
    b = call(n, lambda: client().info())
    number = b.get("version", {}).get("number")
    expect(
        n,
        isinstance(number, str) and re.fullmatch(r"(7|8|9)\.\d+\.\d+", number) is not None,
        f"version.number a string like 8.x.y, got {number!r}",
        b,
    )
    expect_eq(n, b.get("tagline"), "You Know, for Search", "tagline", b)


def check_authenticate_basic():
    n = "security.authenticate() with basic_auth (facilitator)"
    b = call(n, lambda: facilitator.security.authenticate())
    expect_eq(n, b.get("username"), "facilitator", "username", b)
    expect_eq(n, b.get("authentication_realm"), FILE_REALM, "authentication_realm", b)
    expect_eq(n, b.get("authentication_type"), "realm", "authentication_type", b)
    expect_eq(n, b.get("enabled"), True, "enabled", b)
    expect(n, isinstance(b.get("roles"), list), "roles a list", b)


def check_tokens():
    n = "security.get_token(grant_type=password, username=enduser)"
    pw = call(
        n,
        lambda: facilitator.security.get_token(
            grant_type="password", username=ENDUSER[0], password=ENDUSER[1]
        ),
    )
    expect(n, is_token(pw.get("access_token")), "an access_token", pw)
    expect(n, is_token(pw.get("refresh_token")), "a refresh_token", pw)
    expect_eq(n, pw.get("type"), "Bearer", "type", pw)
    expect_eq(n, pw.get("expires_in"), 1200, "expires_in (token.timeout 20m)", pw)
    auth = pw.get("authentication", {})
    expect_eq(n, auth.get("username"), "enduser", "authentication.username", pw)
    expect_eq(n, auth.get("roles"), ["superuser"], "authentication.roles", pw)
    a1, r1 = pw["access_token"], pw["refresh_token"]

    n = "security.authenticate() with bearer_auth (enduser's access token)"
    b = call(n, lambda: client(bearer_auth=a1).security.authenticate())
    expect_eq(n, b.get("username"), "enduser", "username", b)
    expect_eq(n, b.get("roles"), ["superuser"], "roles", b)
    expect_eq(n, b.get("authentication_type"), "token", "authentication_type", b)
    expect_eq(n, b.get("authentication_realm"), FILE_REALM, "authentication_realm", b)

    n = "security.get_token(grant_type=client_credentials)"
    cc = call(n, lambda: facilitator.security.get_token(grant_type="client_credentials"))
    expect(n, is_token(cc.get("access_token")), "an access_token", cc)
    expect(n, "refresh_token" not in cc, "no refresh_token", cc)
    expect_eq(n, cc.get("type"), "Bearer", "type", cc)
    expect_eq(n, cc.get("authentication", {}).get("username"), "facilitator", "authentication.username", cc)

    n = "security.get_token(grant_type=refresh_token)"
    rf = call(n, lambda: facilitator.security.get_token(grant_type="refresh_token", refresh_token=r1))
    expect(n, is_token(rf.get("access_token")) and rf["access_token"] != a1, "a new access_token", rf)
    expect(n, is_token(rf.get("refresh_token")) and rf["refresh_token"] != r1, "a new refresh_token", rf)
    expect_eq(n, rf.get("authentication", {}).get("username"), "enduser", "authentication.username", rf)
    expect_eq(n, rf.get("authentication", {}).get("roles"), ["superuser"], "authentication.roles", rf)
    a2, r2 = rf["access_token"], rf["refresh_token"]

    n = "security.invalidate_token(token=<access token>)"
    iv = call(n, lambda: facilitator.security.invalidate_token(token=a1))
    expect_eq(n, iv.get("invalidated_tokens"), 1, "invalidated_tokens", iv)
    expect_eq(n, iv.get("previously_invalidated_tokens"), 0, "previously_invalidated_tokens", iv)
    expect_eq(n, iv.get("error_count"), 0, "error_count", iv)
    n = "security.authenticate() with bearer_auth (an invalidated access token)"
    expect_status(n, lambda: client(bearer_auth=a1).security.authenticate(), 401)

    n = "security.invalidate_token(refresh_token=<refresh token>)"
    iv = call(n, lambda: facilitator.security.invalidate_token(refresh_token=r2))
    expect_eq(n, iv.get("invalidated_tokens"), 1, "invalidated_tokens", iv)
    expect_eq(n, iv.get("previously_invalidated_tokens"), 0, "previously_invalidated_tokens", iv)
    expect_eq(n, iv.get("error_count"), 0, "error_count", iv)
    n = "security.get_token(grant_type=refresh_token) with an invalidated refresh token"
    err = expect_status(
        n, lambda: facilitator.security.get_token(grant_type="refresh_token", refresh_token=r2), 400
    )
    expect_eq(n, err.body.get("error"), "invalid_grant", "error", err.body)

    n = "security.invalidate_token(username=enduser)"
    iv = call(n, lambda: facilitator.security.invalidate_token(username="enduser"))
    # a2 was still valid; a1 and r2 were invalidated above.
    expect(n, isinstance(iv.get("invalidated_tokens"), int) and iv["invalidated_tokens"] >= 1, "invalidated_tokens >= 1", iv)
    expect(n, isinstance(iv.get("previously_invalidated_tokens"), int), "previously_invalidated_tokens a number", iv)
    expect_eq(n, iv.get("error_count"), 0, "error_count", iv)
    n = "security.authenticate() with bearer_auth (access token of a user whose tokens were invalidated)"
    expect_status(n, lambda: client(bearer_auth=a2).security.authenticate(), 401)

    n = "security.invalidate_token(username=<no such user>)"
    iv = call(n, lambda: facilitator.security.invalidate_token(username="nobody-has-this-name"))
    expect_eq(n, iv.get("invalidated_tokens"), 0, "invalidated_tokens", iv)
    expect_eq(n, iv.get("previously_invalidated_tokens"), 0, "previously_invalidated_tokens", iv)
    expect_eq(n, iv.get("error_count"), 0, "error_count", iv)

    n = "security.invalidate_token(realm_name=default_file)"
    iv = call(n, lambda: facilitator.security.invalidate_token(realm_name="default_file"))
    # the client_credentials token is still valid
    expect(n, isinstance(iv.get("invalidated_tokens"), int) and iv["invalidated_tokens"] >= 1, "invalidated_tokens >= 1", iv)
    expect_eq(n, iv.get("error_count"), 0, "error_count", iv)
    n = "security.authenticate() with bearer_auth (client_credentials token after invalidation by realm)"
    expect_status(n, lambda: client(bearer_auth=cc["access_token"]).security.authenticate(), 401)


def check_service_token():
    n = "security.authenticate() with bearer_auth (service token elastic/kibana/kibana-test)"
    if not SERVICE_TOKEN:
        raise CheckFailed(f"{n}: SERVICE_TOKEN is not set (the harness could not generate a service token)")
    b = call(n, lambda: client(bearer_auth=SERVICE_TOKEN).security.authenticate())
    # Elasticsearch's answer for a service account token.
    expect_eq(n, b.get("username"), "elastic/kibana", "username", b)
    expect_eq(n, b.get("authentication_type"), "token", "authentication_type", b)
    expect_eq(n, b.get("authentication_realm", {}).get("name"), "_service_account", "authentication_realm.name", b)
    expect_eq(n, b.get("token", {}).get("name"), "kibana-test", "token.name", b)


def check_role_mapping():
    name = "client-check-py-" + elasticsearch.__versionstr__.replace(".", "-")
    rules = {"all": [{"field": {"realm.name": REALM}}, {"field": {"groups": "finance-team"}}]}
    n = f"security.put_role_mapping(name={name})"
    b = call(
        n,
        lambda: admin.security.put_role_mapping(
            name=name, enabled=True, roles=["finance_data"], rules=rules, metadata={"version": 1}
        ),
    )
    expect_eq(n, b.get("role_mapping"), {"created": True}, "role_mapping", b)

    n = f"security.get_role_mapping(name={name})"
    b = call(n, lambda: admin.security.get_role_mapping(name=name))
    m = b.get(name, {})
    expect_eq(n, m.get("enabled"), True, f"{name}.enabled", b)
    expect_eq(n, m.get("roles"), ["finance_data"], f"{name}.roles", b)
    expect_eq(n, m.get("rules"), rules, f"{name}.rules", b)
    expect_eq(n, m.get("metadata"), {"version": 1}, f"{name}.metadata", b)

    n = f"security.delete_role_mapping(name={name})"
    b = call(n, lambda: admin.security.delete_role_mapping(name=name))
    expect_eq(n, b.get("found"), True, "found", b)


def browser_get(url):
    """What the browser does with prepare's `redirect`: GET it, do not follow the redirect."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location")
    finally:
        conn.close()


def check_oidc_and_profile():
    n = f"security.oidc_prepare_authentication(realm={REALM})"
    p = call(n, lambda: facilitator.security.oidc_prepare_authentication(realm=REALM))
    expect(n, isinstance(p.get("redirect"), str) and p["redirect"].startswith("http"), "a redirect URL", p)
    expect(n, isinstance(p.get("state"), str) and p["state"], "a state", p)
    expect(n, isinstance(p.get("nonce"), str) and p["nonce"], "a nonce", p)
    expect_eq(n, p.get("realm"), REALM, "realm", p)

    n = "GET <prepare redirect> at the OpenID Provider (no redirects followed)"
    status, location = call(n, lambda: browser_get(p["redirect"]))
    expect(n, status == 302 and location, f"302 with a Location, got {status} {location!r}", p)
    expect(n, location.startswith(CALLBACK + "?"), f"Location on {CALLBACK}, got {location!r}", p)

    n = "security.oidc_authenticate(redirect_uri=<callback URL>, state, nonce, realm)"
    a = call(
        n,
        lambda: facilitator.security.oidc_authenticate(
            redirect_uri=location, state=p["state"], nonce=p["nonce"], realm=REALM
        ),
    )
    expect_eq(n, a.get("username"), OIDC_USER, "username", a)
    expect(n, is_token(a.get("access_token")), "an access_token", a)
    expect(n, is_token(a.get("refresh_token")), "a refresh_token", a)
    expect_eq(n, a.get("type"), "Bearer", "type", a)
    auth = a.get("authentication", {})
    expect_eq(n, auth.get("username"), OIDC_USER, "authentication.username", a)
    expect_eq(n, auth.get("authentication_realm"), {"name": REALM, "type": "oidc"}, "authentication.authentication_realm", a)
    expect(n, isinstance(auth.get("roles"), list), "authentication.roles a list", a)
    access, refresh = a["access_token"], a["refresh_token"]

    n = "security.authenticate() with bearer_auth (the OIDC user's access token)"
    b = call(n, lambda: client(bearer_auth=access).security.authenticate())
    expect_eq(n, b.get("username"), OIDC_USER, "username", b)
    expect_eq(n, b.get("authentication_realm"), {"name": REALM, "type": "oidc"}, "authentication_realm", b)
    expect_eq(n, b.get("authentication_type"), "token", "authentication_type", b)

    n = "security.activate_user_profile(grant_type=access_token, access_token=<OIDC user's>)"
    prof = call(
        n, lambda: facilitator.security.activate_user_profile(grant_type="access_token", access_token=access)
    )
    uid = prof.get("uid")
    expect(n, isinstance(uid, str) and uid, "a uid", prof)
    expect_eq(n, prof.get("enabled"), True, "enabled", prof)
    user = prof.get("user", {})
    expect_eq(n, user.get("username"), OIDC_USER, "user.username", prof)
    expect_eq(n, user.get("realm_name"), REALM, "user.realm_name", prof)
    expect(n, isinstance(user.get("roles"), list), "user.roles a list", prof)

    n = f"security.get_user_profile(uid={uid})"
    g = call(n, lambda: facilitator.security.get_user_profile(uid=uid))
    profiles = g.get("profiles")
    expect(n, isinstance(profiles, list) and len(profiles) == 1, "profiles: a list of one", g)
    expect_eq(n, profiles[0].get("uid"), uid, "profiles[0].uid", g)
    expect_eq(n, profiles[0].get("user", {}).get("username"), OIDC_USER, "profiles[0].user.username", g)
    expect_eq(n, profiles[0].get("user", {}).get("realm_name"), REALM, "profiles[0].user.realm_name", g)

    n = "security.oidc_logout(token, refresh_token)"
    lo = call(n, lambda: facilitator.security.oidc_logout(token=access, refresh_token=refresh))
    expect(n, isinstance(lo.get("redirect"), str), "redirect a string", lo)
    expect(n, "id_token_hint=" in lo["redirect"], "redirect with an id_token_hint", lo)

    n = "security.authenticate() with bearer_auth (the OIDC access token after logout)"
    expect_status(n, lambda: client(bearer_auth=access).security.authenticate(), 401)


GROUPS = [
    check_info,
    check_authenticate_basic,
    check_tokens,
    check_service_token,
    check_role_mapping,
    check_oidc_and_profile,
]


def main():
    if not URL:
        print(f"[{VERSION}] OIDC_REALM_URL is not set", file=sys.stderr)
        return 2
    print(f"[{VERSION}] against {URL} (python {sys.version.split()[0]})")
    failures = []
    for group in GROUPS:
        try:
            group()
            print(f"[{VERSION}] ok   {group.__name__}")
        except CheckFailed as e:
            failures.append(f"[{VERSION}] FAIL {group.__name__}: {e}")
            print(failures[-1])
        except Exception:  # noqa: BLE001 - a bug in this script
            failures.append(f"[{VERSION}] ERROR {group.__name__}:\n{traceback.format_exc()}")
            print(failures[-1])
    for f in HEADER_FAILURES:
        failures.append(f"[{VERSION}] FAIL {f}")
        print(failures[-1])
    if failures:
        print(f"\n[{VERSION}] {len(failures)} failures:", file=sys.stderr)
        for f in failures:
            print(f, file=sys.stderr)
        return 1
    print(f"[{VERSION}] all {len(GROUPS)} groups passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
