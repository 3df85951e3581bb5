#!/usr/bin/env python3
"""Parse wrk (4.x) output files and print a markdown comparison table.

Used by bench/run; it can also be run by hand:

    bench/parse_wrk.py parse FILE            # one wrk output -> JSON
    bench/parse_wrk.py table --dir DIR --targets "direct nginx portcullis authenticated" \
        --conns "32 128" --repeats 3 --json DIR/summary.json
    bench/parse_wrk.py budget --json DIR/summary.json --conns "32 128" [--rss-kb KB] [--ready-ms MS]
    bench/parse_wrk.py stages [--sessions F] [--idle F] [--refresh F --refresh-ttl S --refresh-skew S] \
        --json DIR/summary.json

`table` expects files named DIR/<target>_c<conns>_r<repeat>.txt (repeat from 1).
For every (target, concurrency) it takes the median requests/s, the median p50
and the median p99 across repeats (each median computed independently), and
prints req/s ratios against the nginx and direct rows of the same concurrency.
`budget` checks the authenticated rows, Portcullis' peak RSS, its startup time and
(when measured) its RSS with 10,000 live sessions against the budget and prints
PASS/MISS for each check.
`stages` prints the "Memory and refresh" section from the JSON that
`bench/gateway_helper.py sessions`, `idle-conns` and `refresh` wrote, and adds those
results to summary.json (keys `memory_sessions`, `memory_idle_connections`, `refresh`).
"""

import argparse
import json
import os
import re
import statistics
import sys

# wrk prints durations with these units (see wrk's units.c: us, ms, s, m, h).
_TIME_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_RE_PCT = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+" + _NUM + r"\s*(us|ms|s|m|h)\s*$")
_RE_RPS = re.compile(r"^\s*Requests/sec:\s+" + _NUM + r"\s*$")
_RE_TOTAL = re.compile(r"^\s*([0-9]+) requests in " + _NUM + r"(us|ms|s|m|h)")
_RE_SOCK = re.compile(
    r"Socket errors:\s*connect\s+([0-9]+),\s*read\s+([0-9]+),\s*write\s+([0-9]+),\s*timeout\s+([0-9]+)"
)
_RE_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s*([0-9]+)")


class ParseError(Exception):
    pass


def parse_wrk(text, name="<wrk output>"):
    """Return dict: rps, p50_us, p75_us, p90_us, p99_us, requests, errors (dict)."""
    out = {"errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}}
    for line in text.splitlines():
        m = _RE_PCT.match(line)
        if m:
            out["p%s_us" % m.group(1)] = float(m.group(2)) * _TIME_UNITS_US[m.group(3)]
            continue
        m = _RE_RPS.match(line)
        if m:
            out["rps"] = float(m.group(1))
            continue
        m = _RE_TOTAL.match(line)
        if m:
            out["requests"] = int(m.group(1))
            continue
        m = _RE_SOCK.search(line)
        if m:
            for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
                out["errors"][k] = int(v)
            continue
        m = _RE_NON2XX.search(line)
        if m:
            out["errors"]["non2xx"] = int(m.group(1))
    missing = [k for k in ("rps", "p50_us", "p99_us", "requests") if k not in out]
    if missing:
        raise ParseError(
            "%s: could not find %s in wrk output (was --latency passed? did wrk fail?)\n--- output ---\n%s"
            % (name, ", ".join(missing), text)
        )
    return out


def fmt_latency(us):
    if us < 1000:
        return "%.0f µs" % us
    if us < 1e6:
        return "%.2f ms" % (us / 1e3)
    return "%.2f s" % (us / 1e6)


def fmt_ratio(num, den):
    if den is None or den == 0 or num is None:
        return "n/a"
    return "%.2f" % (num / den)


def cmd_parse(args):
    for path in args.files:
        with open(path, encoding="utf-8", errors="replace") as f:
            print(json.dumps(parse_wrk(f.read(), path), sort_keys=True))


# CPU time per request, from the process accounting bench/run writes next to each wrk
# output (<cell>.cpu.json): the serving processes' user and system time, the upstream's,
# and wrk's own.
CPU_PARTS = ("server_user", "server_system", "server", "upstream", "wrk", "all")


def cpu_per_request(path, requests, direct):
    """µs of CPU per request for each of CPU_PARTS, or None without the file."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    if not requests:
        return None
    tick_us = 1e6 / raw["hz"]
    out = {
        "server_user": raw["server_user_ticks"] * tick_us / requests,
        "server_system": raw["server_system_ticks"] * tick_us / requests,
        "upstream": raw["upstream_ticks"] * tick_us / requests,
        "wrk": raw["wrk_ms"] * 1e3 / requests,
    }
    out["server"] = out["server_user"] + out["server_system"]
    # The direct target's server is the upstream: counted once.
    out["all"] = out["server"] + out["wrk"] + (0.0 if direct else out["upstream"])
    return out


def print_cpu_table(rows, targets, conns):
    print()
    print("CPU time per request (µs; medians over the repeats; clock-tick accounting from /proc, so")
    print("about ±1 %). *server* is the target's serving processes (nginx: its workers; Portcullis:")
    print("the gateway process; direct: the upstream itself, also counted as *upstream*).")
    print()
    print("| target | conns | server user | server system | server | vs nginx | upstream | wrk | all |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        ngx = rows.get(("nginx", c), {}).get("cpu_us", {}).get("server")
        for t in targets:
            cpu = rows[(t, c)]["cpu_us"]
            print(
                "| %s | %d | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %.1f |"
                % (t, c, cpu["server_user"], cpu["server_system"], cpu["server"],
                   fmt_ratio(cpu["server"], ngx), cpu["upstream"], cpu["wrk"], cpu["all"])
            )


def cmd_table(args):
    targets = args.targets.split()
    conns = [int(c) for c in args.conns.split()]
    rows = {}
    for t in targets:
        for c in conns:
            runs = []
            for r in range(1, args.repeats + 1):
                path = "%s/%s_c%d_r%d.txt" % (args.dir, t, c, r)
                with open(path, encoding="utf-8", errors="replace") as f:
                    runs.append(parse_wrk(f.read(), path))
                runs[-1]["cpu"] = cpu_per_request(
                    path[: -len(".txt")] + ".cpu.json", runs[-1]["requests"], direct=t == "direct"
                )
            errs = sum(sum(run["errors"].values()) for run in runs)
            # The Redis store's commands during each run (bench/run counts them).
            store = []
            for r in range(1, args.repeats + 1):
                counted = "%s/%s_c%d_r%d.redis_commands" % (args.dir, t, c, r)
                if os.path.exists(counted):
                    with open(counted, encoding="utf-8") as f:
                        store.append(int(f.read().strip()))
            rows[(t, c)] = {
                "rps": statistics.median(run["rps"] for run in runs),
                "p50": statistics.median(run["p50_us"] for run in runs),
                "p99": statistics.median(run["p99_us"] for run in runs),
                "rps_all": [run["rps"] for run in runs],
                "errors": errs,
                "requests": sum(run["requests"] for run in runs),
            }
            if store:
                rows[(t, c)]["redis_commands"] = sum(store)
            if all(run["cpu"] for run in runs):
                rows[(t, c)]["cpu_us"] = {
                    part: statistics.median(run["cpu"][part] for run in runs) for part in CPU_PARTS
                }

    # Paired ratios: bench/run measures repeat r of every target back to back, so the
    # ratio within a repeat sees the same machine; their median resists the drift of a
    # shared VM better than the ratio of two medians taken minutes apart.
    for (t, c), row in rows.items():
        for other in ("nginx", "nginx-cookie", "direct"):
            base = rows.get((other, c))
            if base and all(base["rps_all"]):
                pairs = [a / b for a, b in zip(row["rps_all"], base["rps_all"])]
                row["vs_%s_paired" % other] = statistics.median(pairs)

    # TLS: Portcullis terminating TLS against nginx terminating it, paired.
    for c in conns:
        tls, nginx_tls = rows.get(("tls", c)), rows.get(("nginx-tls", c))
        if tls and nginx_tls and all(nginx_tls["rps_all"]):
            tls["vs_nginx_tls_paired"] = statistics.median(
                a / b for a, b in zip(tls["rps_all"], nginx_tls["rps_all"])
            )

    print("| target | conns | req/s (median) | p50 | p99 | vs nginx | vs nginx, paired | vs direct | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        for t in targets:
            row = rows[(t, c)]
            ngx = rows.get(("nginx", c), {}).get("rps")
            direct = rows.get(("direct", c), {}).get("rps")
            paired = row.get("vs_nginx_paired")
            print(
                "| %s | %d | %.0f | %s | %s | %s | %s | %s | %d |"
                % (
                    t,
                    c,
                    row["rps"],
                    fmt_latency(row["p50"]),
                    fmt_latency(row["p99"]),
                    fmt_ratio(row["rps"], ngx),
                    "n/a" if paired is None else "%.2f" % paired,
                    fmt_ratio(row["rps"], direct),
                    row["errors"],
                )
            )
    tls_rows = [(c, rows[("tls", c)]) for c in conns if "vs_nginx_tls_paired" in rows.get(("tls", c), {})]
    if tls_rows:
        print()
        for c, row in tls_rows:
            plain = rows.get(("authenticated", c))
            cost = ""
            if plain and all(plain["rps_all"]):
                ratio = statistics.median(a / b for a, b in zip(row["rps_all"], plain["rps_all"]))
                cost = " TLS costs it %.0f%% of its plain-HTTP throughput (paired with authenticated)." % (
                    (1 - ratio) * 100
                )
            print(
                "Over TLS, c=%d: Portcullis (signed in) %.0f req/s, %.2fx nginx terminating TLS with the "
                "same certificate and cookie (paired); p99 %s vs %s.%s"
                % (
                    c,
                    row["rps"],
                    row["vs_nginx_tls_paired"],
                    fmt_latency(row["p99"]),
                    fmt_latency(rows[("nginx-tls", c)]["p99"]),
                    cost,
                )
            )
    if args.repeats > 1:
        print()
        print("Per-repeat req/s (spread check):")
        print()
        for c in conns:
            for t in targets:
                row = rows[(t, c)]
                vals = row["rps_all"]
                spread = (max(vals) - min(vals)) / row["rps"] * 100 if row["rps"] else 0.0
                print(
                    "- %s c=%d: %s (spread %.1f%% of median)"
                    % (t, c, ", ".join("%.0f" % v for v in vals), spread)
                )
    if all("cpu_us" in row for row in rows.values()):
        print_cpu_table(rows, targets, conns)
    for (t, c), row in sorted(rows.items()):
        if "redis_commands" in row:
            print()
            print(
                "Redis round trips, %s c=%d: %d commands over %d requests (%.4f per request; the "
                "subscription's pings every 5 s included)"
                % (t, c, row["redis_commands"], row["requests"], row["redis_commands"] / max(row["requests"], 1))
            )
    bad = [(t, c, rows[(t, c)]["errors"]) for (t, c) in rows if rows[(t, c)]["errors"]]
    if bad:
        print()
        for t, c, n in bad:
            print(
                "WARNING: %s c=%d had %d socket errors / non-2xx responses across repeats; "
                "its req/s includes failed requests." % (t, c, n)
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"%s_c%d" % k: v for k, v in rows.items()}, f, indent=2, sort_keys=True
            )

# Budget of the authenticated path (issue text): throughput at least nginx's at each
# concurrency, p99 within 1.2x nginx's, peak RSS within 32 MiB, ready within 200 ms.
BUDGET_RPS_VS_NGINX = 1.0
BUDGET_P99_VS_NGINX = 1.2
BUDGET_RSS_KB = 32 * 1024
BUDGET_READY_MS = 200.0
# RSS with this many signed-in sessions in use (issue text): within 64 MiB.
BUDGET_SESSIONS = 10000
BUDGET_SESSIONS_RSS_KB = 64 * 1024


def cmd_budget(args):
    with open(args.json, encoding="utf-8") as f:
        rows = json.load(f)
    conns = [int(c) for c in args.conns.split()]
    checks = []  # (check, measured, budget, verdict)

    def verdict(ok):
        return "PASS" if ok else "**MISS**"

    for c in conns:
        auth = rows.get("authenticated_c%d" % c)
        ngx = rows.get("nginx_c%d" % c)
        if auth is None or ngx is None:
            missing = " and ".join(t for t, r in (("authenticated", auth), ("nginx", ngx)) if r is None)
            checks.append(("authenticated req/s vs nginx, c=%d" % c, "not measured (%s)" % missing,
                           ">= %.2fx" % BUDGET_RPS_VS_NGINX, "n/a"))
            checks.append(("authenticated p99 vs nginx p99, c=%d" % c, "not measured (%s)" % missing,
                           "<= %.2fx" % BUDGET_P99_VS_NGINX, "n/a"))
            continue
        # The paired ratio (median of per-repeat ratios) when there is one.
        ratio = auth.get("vs_nginx_paired", auth["rps"] / ngx["rps"] if ngx["rps"] else 0.0)
        checks.append((
            "authenticated req/s vs nginx, c=%d" % c,
            "%.2fx (paired; medians %.0f / %.0f)" % (ratio, auth["rps"], ngx["rps"]),
            ">= %.2fx" % BUDGET_RPS_VS_NGINX,
            verdict(ratio >= BUDGET_RPS_VS_NGINX),
        ))
        p99_ratio = auth["p99"] / ngx["p99"] if ngx["p99"] else float("inf")
        checks.append((
            "authenticated p99 vs nginx p99, c=%d" % c,
            "%.2fx (%s / %s)" % (p99_ratio, fmt_latency(auth["p99"]), fmt_latency(ngx["p99"])),
            "<= %.2fx" % BUDGET_P99_VS_NGINX,
            verdict(p99_ratio <= BUDGET_P99_VS_NGINX),
        ))
        # Not a budget: nginx carrying the same request bytes (the session's Cookie).
        same_bytes = rows.get("nginx-cookie_c%d" % c)
        if same_bytes and same_bytes["rps"]:
            same_ratio = auth.get("vs_nginx-cookie_paired", auth["rps"] / same_bytes["rps"])
            checks.append((
                "authenticated req/s vs nginx-cookie (same request bytes), c=%d" % c,
                "%.2fx (paired; medians %.0f / %.0f)" % (same_ratio, auth["rps"], same_bytes["rps"]),
                "reference",
                "-",
            ))
    if args.rss_kb is None:
        checks.append(("Portcullis peak RSS", "not measured", "<= 32 MiB", "n/a"))
    else:
        checks.append((
            "Portcullis peak RSS",
            "%.1f MiB (%d kB)" % (args.rss_kb / 1024, args.rss_kb),
            "<= 32 MiB",
            verdict(args.rss_kb <= BUDGET_RSS_KB),
        ))
    if args.ready_ms is None:
        checks.append(("Portcullis startup to ready", "not measured", "< %.0f ms" % BUDGET_READY_MS, "n/a"))
    else:
        checks.append((
            "Portcullis startup to ready",
            "%.1f ms (median)" % args.ready_ms,
            "< %.0f ms" % BUDGET_READY_MS,
            verdict(args.ready_ms < BUDGET_READY_MS),
        ))
    # The Redis store (scale-out issue): signed in through it at least nginx forwarding a
    # bare GET, and within 64 MiB with 10,000 live sessions.
    for c in conns:
        red = rows.get("redis_c%d" % c)
        ngx = rows.get("nginx_c%d" % c)
        label = "signed in, Redis store, req/s vs nginx, c=%d" % c
        if red is None or ngx is None:
            checks.append((label, "not measured", ">= %.2fx" % BUDGET_RPS_VS_NGINX, "n/a"))
            continue
        ratio = red.get("vs_nginx_paired", red["rps"] / ngx["rps"] if ngx["rps"] else 0.0)
        checks.append((label, "%.2fx (paired; medians %.0f / %.0f)" % (ratio, red["rps"], ngx["rps"]),
                       ">= %.2fx" % BUDGET_RPS_VS_NGINX, verdict(ratio >= BUDGET_RPS_VS_NGINX)))
        if "redis_commands" in red:
            checks.append(("Redis commands per repeat request, c=%d" % c,
                           "%.4f (%d over %d requests)" % (red["redis_commands"] / max(red["requests"], 1),
                                                           red["redis_commands"], red["requests"]),
                           "goal: 0", "-"))
    for key, label in (("memory_sessions", "Portcullis RSS with %d live sessions" % BUDGET_SESSIONS),
                       ("memory_sessions_redis",
                        "Portcullis (Redis store) RSS with %d live sessions" % BUDGET_SESSIONS)):
        live_sessions_check(rows.get(key), label, checks, verdict)
    print("### Budget")
    print()
    print("| check | measured | budget | result |")
    print("|---|---:|---:|---|")
    for check in checks:
        print("| %s | %s | %s | %s |" % check)
    verdicts = [v for _, _, _, v in checks]
    print()
    print(
        "Budget: %d PASS, %d MISS, %d not measured."
        % (verdicts.count("PASS"), verdicts.count("**MISS**"), verdicts.count("n/a"))
    )


def live_sessions_check(live, label, checks, verdict):
    """The RSS-with-live-sessions check of one gateway (`stages --sessions*`)."""
    budget = "<= %d MiB" % (BUDGET_SESSIONS_RSS_KB // 1024)
    if live is None:
        checks.append((label, "not measured", budget, "n/a"))
        return
    rss = live["after"]["rss_kb"]
    measured = "%.1f MiB (%d kB)" % (rss / 1024, rss)
    if live["sessions"] < BUDGET_SESSIONS:
        checks.append((label, "%s with only %d sessions" % (measured, live["sessions"]), budget, "n/a"))
    elif live["failed"]:
        checks.append((label, "%s, but %d sign-ins/requests failed" % (measured, live["failed"]), budget, "**MISS**"))
    else:
        checks.append((label, measured, budget, verdict(rss <= BUDGET_SESSIONS_RSS_KB)))


def mib(kb):
    return "%.1f MiB (%d kB)" % (kb / 1024, kb)


def fmt_rounds(rounds):
    return "; ".join("%d in %.1f s, %d failed" % (r["requests"], r["seconds"], r["failed"]) for r in rounds)


def fmt_reasons(reasons):
    return "; ".join("%d× %s" % (r["count"], r["reason"]) for r in reasons)


def stage_sessions(d, out):
    sign_in = d["sign_in"]
    rate = sign_in["ok"] / sign_in["seconds"] if sign_in["seconds"] else 0.0
    out.append(
        "**Live sessions.** On the gateway measured above, after the load: %d distinct sessions "
        "signed in as alice the way `login` does (`/auth/login`, authorize, the sign-in form, "
        "`/auth/callback`; %d client threads on keep-alive connections) in %.1f s (%.0f/s), "
        "%d failed (%d distinct Cookie headers, median %d bytes). Then %d round(s) of one "
        "`GET /app/` per session, each required to answer 200 with the upstream's body: %s."
        % (d["sessions"], d["threads"], sign_in["seconds"], rate, sign_in["failed"],
           sign_in["distinct_cookies"], sign_in["cookie_bytes_median"], d["rounds"],
           fmt_rounds(d["request_rounds"])))
    out.append("")
    peak = "peak during this stage" if d["peak_reset"] else "peak since start (VmHWM could not be reset)"
    out.append("| Portcullis | VmRSS | VmHWM |")
    out.append("|---|---:|---:|")
    out.append("| before the sign-ins | %s | %s (peak of the load above) |"
               % (mib(d["before"]["rss_kb"]), mib(d["before"]["hwm_kb"])))
    out.append("| after %d sign-ins | %s | |" % (sign_in["ok"], mib(d["after_sign_in"]["rss_kb"])))
    out.append("| after the request rounds (%d live sessions) | **%s** | %s (%s) |"
               % (sign_in["ok"], mib(d["after"]["rss_kb"]), mib(d["after"]["hwm_kb"]), peak))
    failures = [r for r in [sign_in] + d["request_rounds"] if r["failed"]]
    if failures:
        out.append("")
        out.append("**WARNING: %d sign-ins/requests failed** (must be 0): %s"
                   % (d["failed"], " | ".join(fmt_reasons(r["reasons"]) for r in failures)))


def stage_idle(d, out):
    n = d["idle"]
    before, with_conns = d["before"]["rss_kb"], d["with_connections"]["rss_kb"]
    per_conn = (with_conns - before) / n if n else 0.0
    gauge = d.get("open_gauge")
    out.append(
        "**Idle keep-alive connections.** On the same gateway: %d connections to 127.0.0.1 (at most "
        "%d being opened or answered at a time), one `GET /` on each (public route, HTTP/1.1 "
        "keep-alive, whole response read: 200 and the upstream's body), then all left open and idle. "
        "Opened and answered in %.1f s, %d failed; when RSS was read (%.1f s after the first went "
        "idle) %d were still open by the client's check, %s by the gateway's "
        "`portcullis_open_connections` gauge."
        % (d["connections"], d["inflight"], d["open_seconds"], d["failed"],
           d["oldest_idle_seconds"] or 0.0, d["still_open"], "n/a" if gauge is None else gauge))
    out.append("")
    out.append("| Portcullis | VmRSS | VmHWM |")
    out.append("|---|---:|---:|")
    out.append("| before | %s | |" % mib(before))
    out.append("| with %d idle connections | **%s** | %s (peak during this stage) |"
               % (n, mib(with_conns), mib(d["with_connections"]["hwm_kb"])))
    obs = d.get("after_observe")
    if obs:
        out.append("| after %.0f s more idle (%d of %d still open) | %s | |"
                   % (d["observe_seconds"], obs["still_open"], n, mib(obs["rss_kb"])))
    out.append("| after the client closed them all | %s | |" % mib(d["after_close"]["rss_kb"]))
    out.append("")
    out.append("RSS per idle connection: **%.1f KiB** ((%d − %d kB) / %d)." % (per_conn, with_conns, before, n))
    if obs and obs["still_open"] < n:
        out.append("")
        out.append("The gateway closed %d of the %d idle connections within %.0f s of idling: hyper's "
                   "HTTP/1 server runs `server.header_read_timeout` (default 10 s) while it waits for the "
                   "next request on a keep-alive connection, so that is also its idle keep-alive timeout."
                   % (n - obs["still_open"], n, d["observe_seconds"]))
    if d["failed"] or d["still_open"] < n or n < d["connections"]:
        out.append("")
        out.append("**WARNING: not every connection was opened and kept** (%d requested, %d idle, %d still "
                   "open at the RSS reading): %s" % (d["connections"], n, d["still_open"],
                                                    ", ".join("%s: %d" % kv for kv in d["errors"].items()) or "-"))


def stage_refresh(d, out, ttl, skew):
    sign_in, r = d["sign_in"], d["refresh"]
    out.append(
        "**Refresh throughput.** A second gateway and dev-idp: access tokens live %s s, the gateway "
        "refreshes `refresh_skew = \"%ss\"` before expiry. %d sessions signed in (alice) in %.1f s, "
        "%d failed; once every one was inside the refresh window, one `GET /app/` per session, %d in "
        "flight: %d answered in %.2f s, **%s refreshes/s**; %d answered 200 with the upstream's body "
        "and new session cookies (`Set-Cookie` with values other than the ones sent), %d failed. "
        "The dev-idp counts its token-endpoint grants only in-process (`DevIdp::counters()`), not "
        "over HTTP, so the count of refreshes is the `Set-Cookie` check's."
        % (ttl, skew, d["sessions"], sign_in["seconds"], sign_in["failed"], d["inflight"], r["requests"],
           r["seconds"], "n/a" if r["per_second"] is None else "%.0f" % r["per_second"], r["refreshed"],
           r["failed"]))
    if d["failed"]:
        out.append("")
        out.append("**WARNING: %d sign-ins/refreshes failed** (must be 0): %s"
                   % (d["failed"], " | ".join(fmt_reasons(x["reasons"]) for x in (sign_in, r) if x["failed"])))


def cmd_stages(args):
    out = ["### Memory and refresh", ""]
    extra = {}
    parts = []
    if args.sessions:
        with open(args.sessions, encoding="utf-8") as f:
            extra["memory_sessions"] = json.load(f)
        parts.append(lambda o: stage_sessions(extra["memory_sessions"], o))
    if args.sessions_redis:
        with open(args.sessions_redis, encoding="utf-8") as f:
            extra["memory_sessions_redis"] = json.load(f)

        def redis_part(o):
            o.append("**With the Redis store** (the second gateway, `session.store = \"redis\"`):")
            o.append("")
            stage_sessions(extra["memory_sessions_redis"], o)

        parts.append(redis_part)
    if args.idle:
        with open(args.idle, encoding="utf-8") as f:
            extra["memory_idle_connections"] = json.load(f)
        parts.append(lambda o: stage_idle(extra["memory_idle_connections"], o))
    elif args.idle_skipped:
        parts.append(lambda o: o.append("**Idle keep-alive connections:** not measured: %s." % args.idle_skipped))
    if args.refresh:
        with open(args.refresh, encoding="utf-8") as f:
            extra["refresh"] = json.load(f)
        extra["refresh"]["access_token_ttl_s"] = args.refresh_ttl
        extra["refresh"]["refresh_skew_s"] = args.refresh_skew
        parts.append(lambda o: stage_refresh(extra["refresh"], o, args.refresh_ttl, args.refresh_skew))
    for i, part in enumerate(parts):
        if i:
            out.append("")
        part(out)
    print("\n".join(out))
    if args.json:
        try:
            with open(args.json, encoding="utf-8") as f:
                rows = json.load(f)
        except FileNotFoundError:
            rows = {}
        rows.update(extra)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2, sort_keys=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parse", help="parse wrk output files, print one JSON object per file")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_parse)
    t = sub.add_parser("table", help="print the markdown table for a bench/run results dir")
    t.add_argument("--dir", required=True)
    t.add_argument("--targets", required=True)
    t.add_argument("--conns", required=True)
    t.add_argument("--repeats", type=int, required=True)
    t.add_argument("--json", help="also write the aggregated rows as JSON to this file")
    t.set_defaults(func=cmd_table)
    b = sub.add_parser("budget", help="print the PASS/MISS budget table from a summary.json")
    b.add_argument("--json", required=True, help="summary.json written by `table --json`")
    b.add_argument("--conns", required=True)
    b.add_argument("--rss-kb", type=int, help="Portcullis peak RSS (VmHWM) in kB")
    b.add_argument("--ready-ms", type=float, help="Portcullis startup to ready, median, in ms")
    b.set_defaults(func=cmd_budget)
    g = sub.add_parser("stages", help="print the memory and refresh section, add it to summary.json")
    g.add_argument("--sessions", help="JSON of `gateway_helper.py sessions`")
    g.add_argument("--sessions-redis", help="JSON of `gateway_helper.py sessions` against the Redis-store gateway")
    g.add_argument("--idle", help="JSON of `gateway_helper.py idle-conns`")
    g.add_argument("--idle-skipped", help="why the idle-connections stage did not run")
    g.add_argument("--refresh", help="JSON of `gateway_helper.py refresh`")
    g.add_argument("--refresh-ttl", type=int, help="the refresh stage's access-token lifetime, seconds")
    g.add_argument("--refresh-skew", type=int, help="the refresh stage's session.refresh_skew, seconds")
    g.add_argument("--json", help="summary.json to add the results to")
    g.set_defaults(func=cmd_stages)
    args = ap.parse_args()
    try:
        args.func(args)
    except (ParseError, OSError, ValueError, KeyError) as e:
        print("parse_wrk.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
