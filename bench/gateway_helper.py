#!/usr/bin/env python3
"""Helpers for bench/run that talk to a Portcullis gateway (stdlib only).

    bench/gateway_helper.py login --gateway http://127.0.0.1:PORT --path /app/ \
        --username alice --password '...' --cookie-out FILE
        Signs in through the gateway and the development identity provider, the way
        a browser does, and writes the session's Cookie header value to FILE. Prints
        "CHUNKS BYTES" (session cookies, bytes of the Cookie header value) on stdout.

    bench/gateway_helper.py startup --readyz URL --runs 5 -- BINARY ARGS...
        Starts the gateway RUNS times, one after the other; each time measures from
        spawning the process until GET URL answers 200, then stops it (SIGTERM) and
        waits for it to exit. Prints "MEDIAN_MS ms1,ms2,..." on stdout.

The gateway's cookies are `__Host-` prefixed and Secure; over http://127.0.0.1 a
cookie jar (http.cookiejar) would drop them, so they are handled by hand here.
"""

import argparse
import html
import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse

UPSTREAM_BODY = b"hello from upstream\n"


class Fail(Exception):
    pass


def request(url, method="GET", headers=None, body=None, timeout=5.0):
    """One request on a fresh connection; returns (status, [(name, value)], body)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise Fail("only http:// URLs are expected here, got %s" % url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        target = u.path or "/"
        if u.query:
            target += "?" + u.query
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def set_cookies(headers):
    """[(name, value, attributes-lowercased)] from the Set-Cookie headers."""
    out = []
    for k, v in headers:
        if k.lower() != "set-cookie":
            continue
        first, _, attrs = v.partition(";")
        name, _, value = first.strip().partition("=")
        out.append((name, value, attrs.lower()))
    return out


def expect_redirect(step, status, headers, base):
    location = header(headers, "Location")
    if status not in (302, 303) or not location:
        raise Fail("%s: expected a redirect, got HTTP %d (Location %r)" % (step, status, location))
    return urllib.parse.urljoin(base, location)


def login(args):
    gw = args.gateway.rstrip("/")
    log = lambda msg: print("[bench] login: %s" % msg, file=sys.stderr)

    # 1. The gateway starts a login attempt: a tx cookie and a redirect to authorize.
    url = "%s/auth/login?return_to=%s" % (gw, urllib.parse.quote(args.path, safe=""))
    status, headers, _ = request(url)
    authorize = expect_redirect("GET /auth/login", status, headers, url)
    tx = [(n, v) for n, v, a in set_cookies(headers) if v and "max-age=0" not in a]
    if not tx:
        raise Fail("GET /auth/login set no login-attempt cookie")
    tx_cookie = "; ".join("%s=%s" % c for c in tx)

    # 2. The provider's authorize endpoint sends a browser without a session to /login.
    status, headers, _ = request(authorize)
    login_url = expect_redirect("GET authorize", status, headers, authorize)

    # 3. The sign-in form, and 4. posting the credentials to its action.
    status, _, page = request(login_url)
    if status != 200:
        raise Fail("GET %s: HTTP %d" % (login_url, status))
    m = re.search(r'<form[^>]*\baction="([^"]*)"', page.decode("utf-8", "replace"))
    action = urllib.parse.urljoin(login_url, html.unescape(m.group(1))) if m else login_url
    form = urllib.parse.urlencode({"username": args.username, "password": args.password})
    status, headers, body = request(
        action, "POST", {"Content-Type": "application/x-www-form-urlencoded"}, form.encode()
    )
    if status == 200 and b"Incorrect username or password" in body:
        raise Fail("the identity provider refused the credentials of %r" % args.username)
    callback = expect_redirect("POST login form", status, headers, action)
    if not callback.startswith(gw + "/auth/callback"):
        raise Fail("the provider redirected to %s, not to the gateway's callback" % callback)

    # 5. The gateway's callback, with the attempt's cookie: code exchange, session cookies.
    status, headers, body = request(callback, headers={"Cookie": tx_cookie})
    if status != 302:
        raise Fail("GET /auth/callback: HTTP %d: %s" % (status, body[:300].decode("utf-8", "replace")))
    prefix = args.cookie_name
    session = []
    secure = True
    for name, value, attrs in set_cookies(headers):
        if not value or "max-age=0" in attrs:
            continue  # expiring the attempt's cookie (or stale chunks)
        if name == prefix or re.fullmatch(re.escape(prefix) + r"\.[0-9]+", name):
            session.append((name, value))
            secure = secure and "secure" in [a.strip() for a in attrs.split(";")]
    if not session:
        raise Fail("GET /auth/callback set no session cookie named %s[.N] (got %s)"
                   % (prefix, [n for n, _, _ in set_cookies(headers)]))
    session.sort(key=lambda c: int(c[0].rpartition(".")[2]) if c[0] != prefix else -1)
    cookie = "; ".join("%s=%s" % c for c in session)

    # 6. The session works: the protected route answers with the upstream's body...
    probe = gw + args.path
    status, _, body = request(probe, headers={"Cookie": cookie})
    if status != 200 or body != UPSTREAM_BODY:
        raise Fail("GET %s with the session: HTTP %d, body %r" % (args.path, status, body[:200]))
    # ... and without it the same route is refused (it really is protected).
    status, _, _ = request(probe, headers={"Accept": "application/json"})
    if status != 401:
        raise Fail("GET %s without a session: expected 401, got HTTP %d (is the route public?)"
                   % (args.path, status))
    if len(session) < args.min_chunks:
        raise Fail("the session is %d cookie(s), expected at least %d chunks"
                   % (len(session), args.min_chunks))
    if not secure:
        raise Fail("a session cookie was set without Secure (insecure_dev_cookies on?)")
    with open(args.cookie_out, "w", encoding="ascii") as f:
        f.write(cookie)
    log("signed in as %s: %d session cookies (%s), Cookie header %d bytes"
        % (args.username, len(session), ", ".join("%s %d B" % (n, len(v)) for n, v in session), len(cookie)))
    print(len(session), len(cookie))


def startup(args):
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise Fail("startup: no command given")
    # PORTCULLIS_* variables override config keys: keep the caller's out of the child.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    child = None

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    times = []
    log_file = open(args.log, "ab") if args.log else subprocess.DEVNULL
    try:
        for run in range(1, args.runs + 1):
            t0 = time.monotonic()
            child = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
            while True:
                if child.poll() is not None:
                    raise Fail("startup run %d: the gateway exited with %d before it was ready"
                               % (run, child.returncode))
                try:
                    status, _, _ = request(args.readyz, timeout=1.0)
                except OSError:
                    status = None
                if status == 200:
                    break
                if time.monotonic() - t0 > args.timeout:
                    raise Fail("startup run %d: not ready after %.0f s" % (run, args.timeout))
                time.sleep(args.poll_ms / 1000)
            times.append((time.monotonic() - t0) * 1000)
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child = None
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    print("%.1f %s" % (statistics.median(times), ",".join("%.1f" % t for t in times)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    p = sub.add_parser("login", help="sign in through the gateway, write the session Cookie header")
    p.add_argument("--gateway", required=True, help="the gateway's public URL")
    p.add_argument("--path", default="/app/", help="protected path to return to and to probe")
    p.add_argument("--username", default="alice")
    p.add_argument("--password", default="correct horse battery staple")
    p.add_argument("--cookie-name", default="__Host-portcullis")
    p.add_argument("--min-chunks", type=int, default=2)
    p.add_argument("--cookie-out", required=True)
    p.set_defaults(func=login)
    s = sub.add_parser("startup", help="median time from spawn to /readyz 200")
    s.add_argument("--readyz", required=True)
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--poll-ms", type=float, default=2.0)
    s.add_argument("--timeout", type=float, default=10.0)
    s.add_argument("--log", help="append the gateway's output to this file")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(func=startup)
    args = ap.parse_args()
    try:
        args.func(args)
    except (Fail, OSError) as e:
        print("gateway_helper.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
