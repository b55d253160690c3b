#!/usr/bin/env python3
"""A relying party written with Authlib (a second ecosystem's OAuth/OIDC client), run against a live Latchkey.

It goes through the whole OpenID Connect flow the way an app would, with Authlib's own client code (the same
classes its Flask/Django/Starlette integrations use): discovery, an authorization URL with PKCE S256, state and
nonce, the customer's part on Latchkey's real HTML pages (driven with a cookie-keeping requests.Session), the code
exchange, ID token validation (signature against jwks_uri, iss, aud, exp, iat, nonce, at_hash), userinfo, refresh,
introspection (RFC 7662), revocation (RFC 7009), and introspection again after revocation.

Usage: authlib_rp.py --issuer URL --client-id ID --client-secret SECRET --redirect-uri URI --email EMAIL
(the customer's password comes from --password or LATCHKEY_RP_PASSWORD). Every option also reads
LATCHKEY_RP_<NAME> from the environment.

Prints a JSON summary on stdout. Exit status 0 only if every step passed; otherwise the summary names the failed
steps (and the first failure is also written to stderr), and the status is 1. Status 2 means bad usage.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import traceback
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

# Latchkey runs on plain-HTTP loopback in tests; Authlib refuses http:// issuers without this.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import authlib  # noqa: E402
import requests  # noqa: E402
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OpenIDMixin  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.oidc.discovery import OpenIDProviderMetadata  # noqa: E402

SCOPE = "openid profile email"


class StepFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise StepFailed(message)


class RelyingParty(OAuth2Mixin, OpenIDMixin, BaseApp):
    """Authlib's framework-independent OAuth 2.0 / OpenID client app, as its web-framework integrations build it,
    minus the framework: server metadata from the discovery URL, requests for HTTP."""

    client_cls = OAuth2Session

    def __init__(self, **kwargs):
        super().__init__(framework=None, **kwargs)

    def _on_update_token(self, token, refresh_token=None, access_token=None):
        pass


# ---------------------------------------------------------------------------------------------------------------
# The customer's browser


class Forms(HTMLParser):
    """Every <form> in a page: its action and its submittable inputs (hidden, text, checked checkboxes)."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = {"action": a.get("action") or "", "fields": []}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._current["fields"].append((a["name"], a.get("value") or "on"))
            elif kind != "submit":
                self._current["fields"].append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


class Browser:
    """Follows redirects within Latchkey and stops at the redirect back to the app, which it does not follow."""

    def __init__(self, issuer, redirect_uri):
        self.http = requests.Session()
        self.origin = _origin(issuer)
        self.redirect_uri = redirect_uri
        self.pages = []

    def _settle(self, res):
        for _ in range(20):
            if res.is_redirect:
                target = urljoin(res.url, res.headers["location"])
                if target.startswith(self.redirect_uri) or _origin(target) != self.origin:
                    return None, target
                res = self.http.get(target, allow_redirects=False, timeout=30)
                continue
            self.pages.append(urlsplit(res.url).path)
            return res, None
        raise StepFailed("more than 20 redirects within Latchkey")

    def open(self, url):
        return self._settle(self.http.get(url, allow_redirects=False, timeout=30))

    def submit(self, page, action, fields=(), button=None):
        parser = Forms()
        parser.feed(page.text)
        form = next((f for f in parser.forms if f["action"].endswith(action)), None)
        check(form is not None, f"no form posting to {action} on {page.url} (HTTP {page.status_code})")
        data = [(k, v) for (k, v) in form["fields"] if k not in dict(fields)]
        data += list(fields)
        if button:
            data.append(button)
        target = urljoin(page.url, form["action"])
        return self._settle(self.http.post(target, data=data, allow_redirects=False, timeout=30))


def _origin(url):
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, u.hostname, port)


def sign_in_and_allow(browser, authorize_url, email, password):
    """Opens the authorization URL, signs in on /ap/signin, presses Allow on the consent page; returns the
    Location of the redirect back to the app."""
    page, left = browser.open(authorize_url)
    if page is not None:
        check(page.status_code == 200, f"authorization URL ended at HTTP {page.status_code} {page.url}: {page.text[:500]}")
        check("/ap/signin" in page.url, f"expected the sign-in page, got {page.url}")
        page, left = browser.submit(page, "/ap/signin", [("email", email), ("password", password)])
    if page is not None:
        check(page.status_code == 200, f"sign-in ended at HTTP {page.status_code} {page.url}: {page.text[:500]}")
        check("would like to use your Latchkey account" in page.text, f"expected the consent page at {page.url}: {page.text[:500]}")
        page, left = browser.submit(page, "/ap/oa/consent", button=("decision", "allow"))
    check(page is None, f"expected a redirect to the app, stayed on {page.url if page is not None else ''}")
    return left


# ---------------------------------------------------------------------------------------------------------------
# The flow


def b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def run(args):
    summary = {"authlib": authlib.__version__, "steps": {}, "failed": []}
    ctx = {}
    issuer = args.issuer.rstrip("/")
    discovery_url = f"{issuer}/.well-known/openid-configuration"

    rp = RelyingParty(
        client_id=args.client_id,
        client_secret=args.client_secret,
        server_metadata_url=discovery_url,
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )

    def session(token=None):
        """A bare Authlib OAuth2Session configured from the discovered metadata, holding `token`."""
        m = ctx["metadata"]
        return OAuth2Session(
            client_id=args.client_id,
            client_secret=args.client_secret,
            scope=SCOPE,
            token=token,
            token_endpoint=m["token_endpoint"],
        )

    def endpoint(name):
        url = ctx["metadata"].get(name)
        check(url, f"the discovery document names no {name}")
        return url

    def validate_id_token(token, nonce):
        return rp.parse_id_token(
            token,
            nonce,
            claims_options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": args.client_id},
                "sub": {"essential": True},
            },
            leeway=5,
        )

    # -- steps ---------------------------------------------------------------------------------------------------

    def discovery():
        metadata = dict(rp.load_server_metadata())
        metadata.pop("_loaded_at", None)
        OpenIDProviderMetadata(metadata).validate()
        check(metadata["issuer"] == issuer, f"issuer {metadata['issuer']!r} is not {issuer!r}")
        check("S256" in metadata.get("code_challenge_methods_supported", []), "S256 PKCE is not advertised")
        ctx["metadata"] = metadata
        return {
            "issuer": metadata["issuer"],
            "endpoints": sorted(k for k in metadata if k.endswith("_endpoint") or k == "jwks_uri"),
        }

    def authorize():
        rv = rp.create_authorization_url(redirect_uri=args.redirect_uri)
        query = parse_qs(urlsplit(rv["url"]).query)
        check(query.get("code_challenge_method") == ["S256"], f"no S256 challenge in {rv['url']}")
        check(query.get("nonce") == [rv["nonce"]] and query.get("state") == [rv["state"]], "no nonce/state in the URL")
        check(rv["url"].startswith(ctx["metadata"]["authorization_endpoint"] + "?"), "not the discovered endpoint")
        ctx["auth"] = rv
        return {"scope": query.get("scope", [""])[0]}

    def login():
        browser = Browser(issuer, args.redirect_uri)
        location = sign_in_and_allow(browser, ctx["auth"]["url"], args.email, args.password)
        check(location.startswith(args.redirect_uri), f"redirected to {location}, not to {args.redirect_uri}")
        query = parse_qs(urlsplit(location).query)
        check("error" not in query, f"authorization failed: {query}")
        check(query.get("code"), f"no code in {location}")
        check(query.get("state") == [ctx["auth"]["state"]], "state not echoed")
        check(query.get("iss") == [issuer], f"RFC 9207 iss is {query.get('iss')}, not {issuer}")
        ctx["location"] = location
        return {"pages": browser.pages}

    def token():
        # Authlib checks the state in the redirect itself and sends the PKCE code_verifier.
        tok = rp.fetch_access_token(
            redirect_uri=args.redirect_uri,
            authorization_response=ctx["location"],
            state=ctx["auth"]["state"],
            code_verifier=ctx["auth"]["code_verifier"],
        )
        check(str(tok.get("token_type", "")).lower() == "bearer", f"token_type is {tok.get('token_type')}")
        for k in ("access_token", "refresh_token", "id_token"):
            check(tok.get(k), f"no {k} in the token response")
        check(isinstance(tok.get("expires_in"), int), "expires_in is not an integer")
        ctx["token"] = tok
        return {"expires_in": tok["expires_in"], "scope": tok.get("scope")}

    def id_token():
        tok = ctx["token"]
        header = b64url_json(tok["id_token"].split(".")[0])
        claims = validate_id_token(tok, ctx["auth"]["nonce"])
        check(claims.get("at_hash"), "the ID token has no at_hash")
        check(claims.get("nonce") == ctx["auth"]["nonce"], "nonce not in the ID token")
        check(isinstance(claims.get("auth_time"), int), "auth_time missing")
        check(claims["exp"] > time.time(), "the ID token has expired")
        # Authlib really checks: a wrong nonce, a token not for this access token, a forged signature all fail.
        for label, bad_token, nonce in (
            ("wrong nonce", tok, "not-the-nonce"),
            ("wrong at_hash", {**tok, "access_token": tok["access_token"] + "x"}, ctx["auth"]["nonce"]),
            ("bad signature", {**tok, "id_token": _flip_signature(tok["id_token"])}, ctx["auth"]["nonce"]),
        ):
            try:
                validate_id_token(bad_token, nonce)
            except Exception:  # noqa: BLE001 - any rejection will do
                continue
            raise StepFailed(f"Authlib accepted an ID token with a {label}")
        ctx["sub"] = claims["sub"]
        return {"alg": header.get("alg"), "kid": header.get("kid"), "sub": claims["sub"], "aud": claims["aud"]}

    def userinfo():
        endpoint("userinfo_endpoint")
        info = rp.userinfo(token=ctx["token"])
        check(info.get("sub") == ctx["sub"], f"userinfo sub {info.get('sub')!r} is not the ID token's {ctx['sub']!r}")
        check(info.get("email") == args.email, f"userinfo email is {info.get('email')!r}")
        check(info.get("name"), "userinfo has no name")
        check(isinstance(info.get("email_verified"), bool), "userinfo email_verified is not a boolean")
        return dict(info)

    def refresh():
        old = ctx["token"]
        client = session(token=old)
        new = client.refresh_token(ctx["metadata"]["token_endpoint"], refresh_token=old["refresh_token"])
        check(new.get("access_token") and new["access_token"] != old["access_token"], "no new access token")
        check(new.get("refresh_token") and new["refresh_token"] != old["refresh_token"], "refresh token not rotated")
        result = {"rotated": True, "id_token": bool(new.get("id_token"))}
        if new.get("id_token"):
            claims = validate_id_token(new, None)
            check(claims["sub"] == ctx["sub"], "the refreshed ID token names another subject")
        ctx["refreshed"] = dict(new)
        return result

    def introspect(tok, hint):
        client = session()
        res = client.introspect_token(endpoint("introspection_endpoint"), token=tok, token_type_hint=hint)
        check(res.status_code == 200, f"introspection answered HTTP {res.status_code}: {res.text[:300]}")
        return res.json()

    def introspection():
        body = introspect(ctx["refreshed"]["access_token"], "access_token")
        check(body.get("active") is True, f"the new access token is not active: {body}")
        check(body.get("client_id") == args.client_id, f"client_id is {body.get('client_id')!r}")
        check("openid" in str(body.get("scope", "")).split(), f"scope is {body.get('scope')!r}")
        if "sub" in body:
            check(body["sub"] == ctx["sub"], f"introspected sub {body['sub']!r} is not {ctx['sub']!r}")
        return body

    def revocation():
        client = session()
        res = client.revoke_token(
            endpoint("revocation_endpoint"), token=ctx["refreshed"]["refresh_token"], token_type_hint="refresh_token"
        )
        check(res.status_code == 200, f"revocation answered HTTP {res.status_code}: {res.text[:300]}")
        return {"status": res.status_code}

    def after_revocation():
        access = introspect(ctx["refreshed"]["access_token"], "access_token")
        check(access.get("active") is False, f"the access token is still active after revoking its refresh token: {access}")
        refresh_body = introspect(ctx["refreshed"]["refresh_token"], "refresh_token")
        check(refresh_body.get("active") is False, f"the revoked refresh token is still active: {refresh_body}")
        try:
            session().refresh_token(ctx["metadata"]["token_endpoint"], refresh_token=ctx["refreshed"]["refresh_token"])
        except Exception as e:  # noqa: BLE001 - Authlib raises OAuthError with the server's error code
            error = getattr(e, "error", str(e))
        else:
            raise StepFailed("the revoked refresh token still refreshes")
        check(error == "invalid_grant", f"refreshing with the revoked token gave {error!r}, not invalid_grant")
        return {"access_token_active": False, "refresh_token_active": False, "refresh_error": error}

    steps = [
        ("discovery", discovery, []),
        ("authorize", authorize, ["discovery"]),
        ("login", login, ["authorize"]),
        ("token", token, ["login"]),
        ("id_token", id_token, ["token"]),
        ("userinfo", userinfo, ["id_token"]),
        ("refresh", refresh, ["id_token"]),
        ("introspection", introspection, ["refresh"]),
        ("revocation", revocation, ["refresh"]),
        ("after_revocation", after_revocation, ["revocation", "introspection"]),
    ]
    for name, step, needs in steps:
        missing = [n for n in needs if summary["steps"].get(n, {}).get("ok") is not True]
        if missing:
            summary["steps"][name] = {"ok": False, "skipped": f"needs {', '.join(missing)}"}
            summary["failed"].append(name)
            continue
        try:
            summary["steps"][name] = {"ok": True, "result": step()}
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next independent step runs
            detail = f"{type(e).__name__}: {e}"
            if not isinstance(e, StepFailed):
                detail += "\n" + traceback.format_exc(limit=4)
            summary["steps"][name] = {"ok": False, "error": detail}
            summary["failed"].append(name)
    summary["ok"] = not summary["failed"]
    return summary


def _flip_signature(jwt):
    head, payload, sig = jwt.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0x01
    return ".".join([head, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])

    def opt(name, required=True):
        env = "LATCHKEY_RP_" + name.upper().replace("-", "_")
        p.add_argument("--" + name, default=os.environ.get(env), required=required and env not in os.environ)

    for name in ("issuer", "client-id", "client-secret", "redirect-uri", "email", "password"):
        opt(name)
    args = p.parse_args()

    summary = run(args)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    if not summary["ok"]:
        first = summary["failed"][0]
        print(f"authlib_rp: step {first} failed: {summary['steps'][first]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
