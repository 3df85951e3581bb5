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

    bench/gateway_helper.py sessions --gateway URL --path /app/ --count 10000 \
        --rounds 2 --pid PID
        Signs in COUNT distinct sessions (as `login` does, from a thread pool with
        keep-alive connections), then sends GET PATH once per session per round; each
        must answer 200 with the upstream's body. Reads VmRSS/VmHWM of PID (the
        gateway) before, after the sign-ins and after the rounds. Prints one JSON object.

    bench/gateway_helper.py idle-conns --port PORT --count 10000 --pid PID \
        --metrics URL --observe 12
        Opens COUNT connections to 127.0.0.1:PORT, sends one keep-alive GET on each
        and reads the whole response, keeps them all open and idle, reads the gateway's
        RSS and its open-connections gauge, then waits OBSERVE seconds to see whether
        the gateway closes idle connections, closes them all. Prints one JSON object.

    bench/gateway_helper.py refresh --gateway URL --path /app/ --count 1000 \
        --inflight 64 --window-after 2
        Signs in COUNT sessions against a gateway whose access tokens are about to
        expire, waits until every session is inside the refresh window (WINDOW_AFTER
        seconds after the last sign-in), then sends one GET PATH per session, INFLIGHT
        at a time, and times it; each answer must be 200 with the upstream's body and
        new session cookies. Prints one JSON object.

The gateway's cookies are `__Host-` prefixed and Secure; over http://127.0.0.1 a
cookie jar (http.cookiejar) would drop them, so they are handled by hand here.
"""

import argparse
import collections
import concurrent.futures
import errno
import html
import http.client
import json
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import threading
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


class Client:
    """Keep-alive connections for one thread, one per host:port. A request on a reused
    connection that the server had closed meanwhile (idle timeout) is sent again once
    on a new connection; nothing else is retried."""

    def __init__(self, timeout=10.0):
        self.timeout = timeout
        self.conns = {}

    def request(self, url, method="GET", headers=None, body=None):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            raise Fail("only http:// URLs are expected here, got %s" % url)
        key = (u.hostname, u.port or 80)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        for attempt in (1, 2):
            conn = self.conns.get(key)
            reused = conn is not None
            if conn is None:
                conn = self.conns[key] = http.client.HTTPConnection(key[0], key[1], timeout=self.timeout)
            try:
                conn.request(method, target, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.BadStatusLine):
                conn.close()
                del self.conns[key]
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                conn.close()
                del self.conns[key]
                raise
            if resp.will_close:
                conn.close()
                del self.conns[key]
            return resp.status, resp.getheaders(), data
        raise AssertionError("unreachable")

    def close(self):
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()


def sign_in(send, gw, path, username, password, cookie_name):
    """Signs in through the gateway and the provider's sign-in form, the way a browser
    does, with `send(url, method, headers, body)` doing the HTTP. Returns the session
    cookies [(name, value)] in chunk order and whether every one was set Secure."""
    # 1. The gateway starts a login attempt: a tx cookie and a redirect to authorize.
    url = "%s/auth/login?return_to=%s" % (gw, urllib.parse.quote(path, safe=""))
    status, headers, _ = send(url)
    authorize = expect_redirect("GET /auth/login", status, headers, url)
    tx = [(n, v) for n, v, a in set_cookies(headers) if v and "max-age=0" not in a]
    if not tx:
        raise Fail("GET /auth/login set no login-attempt cookie")
    tx_cookie = "; ".join("%s=%s" % c for c in tx)

    # 2. The provider's authorize endpoint sends a browser without a session to /login.
    status, headers, _ = send(authorize)
    login_url = expect_redirect("GET authorize", status, headers, authorize)

    # 3. The sign-in form, and 4. posting the credentials to its action.
    status, _, page = send(login_url)
    if status != 200:
        raise Fail("GET %s: HTTP %d" % (login_url, status))
    m = re.search(r'<form[^>]*\baction="([^"]*)"', page.decode("utf-8", "replace"))
    action = urllib.parse.urljoin(login_url, html.unescape(m.group(1))) if m else login_url
    form = urllib.parse.urlencode({"username": username, "password": password})
    status, headers, body = send(
        action, "POST", {"Content-Type": "application/x-www-form-urlencoded"}, form.encode()
    )
    if status == 200 and b"Incorrect username or password" in body:
        raise Fail("the identity provider refused the credentials of %r" % username)
    callback = expect_redirect("POST login form", status, headers, action)
    if not callback.startswith(gw + "/auth/callback"):
        raise Fail("the provider redirected to %s, not to the gateway's callback" % callback)

    # 5. The gateway's callback, with the attempt's cookie: code exchange, session cookies.
    status, headers, body = send(callback, "GET", {"Cookie": tx_cookie})
    if status != 302:
        raise Fail("GET /auth/callback: HTTP %d: %s" % (status, body[:300].decode("utf-8", "replace")))
    session, secure = session_cookies(headers, cookie_name)
    if not session:
        raise Fail("GET /auth/callback set no session cookie named %s[.N] (got %s)"
                   % (cookie_name, [n for n, _, _ in set_cookies(headers)]))
    return session, secure


def session_cookies(headers, prefix):
    """The session cookies a response sets ([(name, value)] in chunk order), ignoring
    expired ones, and whether every one of them is Secure."""
    session = []
    secure = True
    for name, value, attrs in set_cookies(headers):
        if not value or "max-age=0" in attrs:
            continue  # expiring the attempt's cookie (or stale chunks)
        if name == prefix or re.fullmatch(re.escape(prefix) + r"\.[0-9]+", name):
            session.append((name, value))
            secure = secure and "secure" in [a.strip() for a in attrs.split(";")]
    session.sort(key=lambda c: int(c[0].rpartition(".")[2]) if c[0] != prefix else -1)
    return session, secure


def login(args):
    gw = args.gateway.rstrip("/")
    log = lambda msg: print("[bench] login: %s" % msg, file=sys.stderr)
    prefix = args.cookie_name
    session, secure = sign_in(request, gw, args.path, args.username, args.password, prefix)
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


# --- many sessions, many connections ---------------------------------------------

def proc_status(pid):
    """VmRSS, VmHWM (kB) and Threads of a process, from /proc/PID/status."""
    out = {}
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except FileNotFoundError:
        raise Fail("the gateway (pid %d) is gone" % pid)
    return {"rss_kb": out.get("VmRSS"), "hwm_kb": out.get("VmHWM"), "threads": out.get("Threads")}


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0, same user), so the peak read
    afterwards is this stage's. Returns whether it worked."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def open_connections(metrics_url):
    """The gateway's `portcullis_open_connections` gauge, or None if unreadable."""
    if not metrics_url:
        return None
    try:
        status, _, body = request(metrics_url, timeout=5.0)
    except OSError:
        return None
    m = re.search(rb"^portcullis_open_connections(?:\{[^}]*\})? ([0-9.e+]+)$", body, re.M)
    return int(float(m.group(1))) if status == 200 and m else None


def run_many(count, threads, task, deadline, what):
    """Runs task(client, i) for i in 0..count-1 on `threads` threads, each thread with
    its own keep-alive Client. Returns (seconds, results by i (None if failed), failure
    reasons counted). Past `deadline` (time.monotonic()) the remaining tasks fail at
    once, so the call always ends."""
    local = threading.local()
    clients = []
    lock = threading.Lock()

    def one(i):
        if time.monotonic() > deadline:
            raise Fail("%s: time limit reached" % what)
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client()
            with lock:
                clients.append(client)
        return task(client, i)

    results = [None] * count
    reasons = collections.Counter()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {pool.submit(one, i): i for i in range(count)}
        for future in concurrent.futures.as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except (Fail, OSError, http.client.HTTPException) as e:
                reasons[("%s: %s" % (type(e).__name__, e))[:200]] += 1
    elapsed = time.monotonic() - t0
    for client in clients:
        client.close()
    return elapsed, results, reasons


def sign_in_many(args, gw, deadline):
    def task(client, _i):
        session, _ = sign_in(client.request, gw, args.path, args.username, args.password, args.cookie_name)
        return session

    return run_many(args.count, args.threads, task, deadline, "sign-in")


def top_reasons(reasons, n=5):
    return [{"count": c, "reason": r} for r, c in reasons.most_common(n)]


def sessions(args):
    gw = args.gateway.rstrip("/")
    log = lambda msg: print("[bench] sessions: %s" % msg, file=sys.stderr)
    deadline = time.monotonic() + args.time_limit
    out = {"sessions": args.count, "rounds": args.rounds, "threads": args.threads}
    out["before"] = proc_status(args.pid)
    out["peak_reset"] = reset_peak(args.pid)
    log("signing in %d sessions (%d threads)" % (args.count, args.threads))
    seconds, results, reasons = sign_in_many(args, gw, deadline)
    cookies = ["; ".join("%s=%s" % c for c in r) for r in results if r]
    out["sign_in"] = {"seconds": round(seconds, 2), "ok": len(cookies),
                      "failed": args.count - len(cookies), "reasons": top_reasons(reasons),
                      "distinct_cookies": len(set(cookies)),
                      "cookie_bytes_median": statistics.median(len(c) for c in cookies) if cookies else 0}
    log("%d signed in, %d failed, in %.1f s" % (len(cookies), args.count - len(cookies), seconds))
    out["after_sign_in"] = proc_status(args.pid)
    url = gw + args.path

    def task(client, i):
        status, _, body = client.request(url, "GET", {"Cookie": cookies[i]})
        if status != 200 or body != UPSTREAM_BODY:
            raise Fail("HTTP %d, body %r" % (status, body[:80]))

    out["request_rounds"] = []
    for r in range(1, args.rounds + 1):
        seconds, _, reasons = run_many(len(cookies), args.threads, task, deadline, "requests")
        failed = sum(reasons.values())
        out["request_rounds"].append({"seconds": round(seconds, 2), "requests": len(cookies),
                                      "failed": failed, "reasons": top_reasons(reasons)})
        log("round %d: %d requests on %s, %d failed, in %.1f s" % (r, len(cookies), args.path, failed, seconds))
    out["after"] = proc_status(args.pid)
    out["failed"] = out["sign_in"]["failed"] + sum(r["failed"] for r in out["request_rounds"])
    print(json.dumps(out))


def idle_conns(args):
    """Opens args.count connections, one keep-alive GET each (at most args.inflight
    being opened or answered at a time), then keeps them idle."""
    log = lambda msg: print("[bench] idle-conns: %s" % msg, file=sys.stderr)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: portcullis-bench-idle\r\n\r\n"
           % (args.path, args.port)).encode()
    sel = selectors.DefaultSelector()
    idle = []
    errors = collections.Counter()
    state = {}  # socket -> bytearray of the response so far (None while connecting)
    started = 0
    t0 = time.monotonic()
    deadline = t0 + args.time_limit
    first_idle_at = None
    out = {"connections": args.count, "inflight": args.inflight}
    out["before"] = proc_status(args.pid)
    out["open_before"] = open_connections(args.metrics)
    out["peak_reset"] = reset_peak(args.pid)
    log("opening %d connections to 127.0.0.1:%d (%d at a time)" % (args.count, args.port, args.inflight))

    def fail(sock, kind):
        errors[kind] += 1
        sel.unregister(sock)
        del state[sock]
        sock.close()

    try:
        while (started < args.count or state) and time.monotonic() < deadline:
            while started < args.count and len(state) < args.inflight:
                started += 1
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                except OSError as e:
                    errors["client socket: %s" % errno.errorcode.get(e.errno, e.errno)] += 1
                    continue
                sock.setblocking(False)
                rc = sock.connect_ex(("127.0.0.1", args.port))
                if rc not in (0, errno.EINPROGRESS):
                    errors["connect: %s" % errno.errorcode.get(rc, rc)] += 1
                    sock.close()
                    continue
                state[sock] = None
                sel.register(sock, selectors.EVENT_WRITE)
            for key, _ in sel.select(timeout=0.5):
                sock = key.fileobj
                if state[sock] is None:  # connected (or failed): send the request
                    rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if rc:
                        fail(sock, "connect: %s" % errno.errorcode.get(rc, rc))
                        continue
                    try:
                        sock.send(req)  # ~80 bytes: fits in an empty send buffer
                    except OSError as e:
                        fail(sock, "send: %s" % errno.errorcode.get(e.errno, e.errno))
                        continue
                    state[sock] = bytearray()
                    sel.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    fail(sock, "recv: %s" % errno.errorcode.get(e.errno, e.errno))
                    continue
                if not chunk:
                    fail(sock, "closed by the gateway before the response was complete")
                    continue
                buf = state[sock]
                buf += chunk
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
                m = re.search(r"(?im)^content-length:\s*([0-9]+)\s*$", "\n".join(head[1:]))
                if not m:
                    fail(sock, "response without Content-Length")
                    continue
                body = bytes(buf[head_end + 4:])
                if len(body) < int(m.group(1)):
                    continue
                sel.unregister(sock)
                del state[sock]
                closes = re.search(r"(?im)^connection:\s*close\s*$", "\n".join(head[1:]))
                if not head[0].startswith("HTTP/1.1 200 ") or body != UPSTREAM_BODY or closes:
                    errors["unexpected response: %s%s" % (head[0], ", Connection: close" if closes else "")] += 1
                    sock.close()
                    continue
                idle.append(sock)
                if first_idle_at is None:
                    first_idle_at = time.monotonic()
        for sock in list(state):
            fail(sock, "time limit reached")
        opened_s = time.monotonic() - t0
        log("%d connections open and idle after %.1f s (%d failed)" % (len(idle), opened_s, sum(errors.values())))
        time.sleep(args.settle)
        out["with_connections"] = proc_status(args.pid)
        out["open_gauge"] = open_connections(args.metrics)
        now = time.monotonic()
        out["open_seconds"] = round(opened_s, 2)
        out["oldest_idle_seconds"] = round(now - first_idle_at, 2) if first_idle_at else None
        out["idle"] = len(idle)
        out["still_open"] = len(idle) - closed_count(idle)
        out["failed"] = sum(errors.values())
        out["errors"] = dict(errors)
        if args.observe > 0 and idle:
            # Does the gateway keep idle keep-alive connections? (hyper closes them once
            # `server.header_read_timeout` passes without a new request.)
            log("watching the idle connections for %.0f s" % args.observe)
            time.sleep(args.observe)
            out["observe_seconds"] = args.observe
            out["after_observe"] = proc_status(args.pid)
            out["after_observe"]["still_open"] = len(idle) - closed_count(idle)
            out["after_observe"]["open_gauge"] = open_connections(args.metrics)
    finally:
        for sock in idle:
            sock.close()
        for sock in list(state):
            sock.close()
        sel.close()
    time.sleep(args.settle)
    out["after_close"] = proc_status(args.pid)
    out["after_close"]["open_gauge"] = open_connections(args.metrics)
    print(json.dumps(out))


def closed_count(socks):
    """How many of these idle sockets the other side has closed (readable = EOF; the
    gateway sends nothing unasked on an idle HTTP/1.1 connection)."""
    closed = 0
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        for key, _ in sel.select(timeout=0):
            try:
                data = key.fileobj.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed += 1
    return closed


def refresh(args):
    gw = args.gateway.rstrip("/")
    log = lambda msg: print("[bench] refresh: %s" % msg, file=sys.stderr)
    deadline = time.monotonic() + args.time_limit
    out = {"sessions": args.count, "inflight": args.inflight}
    log("signing in %d sessions (%d threads)" % (args.count, args.threads))
    seconds, results, reasons = sign_in_many(args, gw, deadline)
    signed_in_at = time.monotonic()
    sessions = [r for r in results if r]
    out["sign_in"] = {"seconds": round(seconds, 2), "ok": len(sessions),
                      "failed": args.count - len(sessions), "reasons": top_reasons(reasons)}
    log("%d signed in, %d failed, in %.1f s; waiting %.1f s for the refresh window"
        % (len(sessions), args.count - len(sessions), seconds, args.window_after))
    time.sleep(max(0.0, signed_in_at + args.window_after - time.monotonic()))
    url = gw + args.path

    def task(client, i):
        old = dict(sessions[i])
        cookie = "; ".join("%s=%s" % c for c in sessions[i])
        status, headers, body = client.request(url, "GET", {"Cookie": cookie})
        if status != 200 or body != UPSTREAM_BODY:
            raise Fail("HTTP %d, body %r" % (status, body[:80]))
        new, _ = session_cookies(headers, args.cookie_name)
        if not new:
            raise Fail("200 without new session cookies (not refreshed)")
        if all(old.get(name) == value for name, value in new):
            raise Fail("the session cookies set are the old ones")

    seconds, _, reasons = run_many(len(sessions), args.inflight, task, deadline, "refresh")
    failed = sum(reasons.values())
    out["refresh"] = {"seconds": round(seconds, 3), "requests": len(sessions), "refreshed": len(sessions) - failed,
                      "failed": failed, "reasons": top_reasons(reasons),
                      "per_second": round((len(sessions) - failed) / seconds, 1) if seconds else None}
    out["failed"] = out["sign_in"]["failed"] + failed
    log("%d requests, %d refreshed, %d failed, in %.2f s" % (len(sessions), len(sessions) - failed, failed, seconds))
    print(json.dumps(out))


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


def redis_commands(args):
    """total_commands_processed of a Redis server (INFO stats), over a raw socket."""
    with socket.create_connection(("127.0.0.1", args.port), timeout=5) as conn:
        conn.sendall(b"INFO stats\r\n")
        header = b""
        while not header.endswith(b"\r\n"):
            chunk = conn.recv(1)
            if not chunk:
                raise Fail("redis closed the connection")
            header += chunk
        if not header.startswith(b"$"):
            raise Fail("INFO answered %r" % header)
        length = int(header[1:-2])
        body = b""
        while len(body) < length + 2:
            chunk = conn.recv(65536)
            if not chunk:
                raise Fail("redis closed the connection")
            body += chunk
    for line in body.decode().splitlines():
        if line.startswith("total_commands_processed:"):
            print(int(line.split(":", 1)[1]))
            return
    raise Fail("INFO stats has no total_commands_processed")


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

    def many(name, help_text, count):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--gateway", required=True, help="the gateway's public URL")
        q.add_argument("--path", default="/app/", help="protected path to return to and to request")
        q.add_argument("--count", type=int, default=count, help="sessions to sign in")
        q.add_argument("--threads", type=int, default=16, help="client threads for the sign-ins")
        q.add_argument("--username", default="alice")
        q.add_argument("--password", default="correct horse battery staple")
        q.add_argument("--cookie-name", default="__Host-portcullis")
        q.add_argument("--time-limit", type=float, default=600.0, help="seconds; then the rest fails")
        return q

    q = many("sessions", "sign in many sessions, request with each, gateway RSS before/after", 10000)
    q.add_argument("--rounds", type=int, default=2)
    q.add_argument("--pid", type=int, required=True, help="the gateway's pid (for /proc/PID/status)")
    q.set_defaults(func=sessions)
    q = many("refresh", "sign in sessions about to expire, then time one refreshing request each", 1000)
    q.add_argument("--inflight", type=int, default=64, help="concurrent requests (threads)")
    q.add_argument("--window-after", type=float, required=True,
                   help="seconds after the last sign-in when every session needs a refresh")
    q.set_defaults(func=refresh)
    i = sub.add_parser("idle-conns", help="RSS with many idle keep-alive connections")
    i.add_argument("--port", type=int, required=True, help="the gateway's port on 127.0.0.1")
    i.add_argument("--path", default="/", help="public path to request once per connection")
    i.add_argument("--count", type=int, default=10000)
    i.add_argument("--inflight", type=int, default=64, help="connections being opened/answered at a time")
    i.add_argument("--pid", type=int, required=True)
    i.add_argument("--metrics", help="the admin listener's /metrics URL (open-connections gauge)")
    i.add_argument("--settle", type=float, default=0.5, help="seconds to wait before reading RSS")
    i.add_argument("--observe", type=float, default=0.0,
                   help="then keep the connections idle this long and count those the gateway closed")
    i.add_argument("--time-limit", type=float, default=120.0)
    i.set_defaults(func=idle_conns)
    r = sub.add_parser("redis-commands", help="commands a Redis server has processed (INFO stats)")
    r.add_argument("--port", type=int, required=True)
    r.set_defaults(func=redis_commands)
    args = ap.parse_args()
    try:
        args.func(args)
    except (Fail, OSError, http.client.HTTPException) as e:
        print("gateway_helper.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
