#!/usr/bin/env python3
"""Parse wrk (4.x) output files and print a markdown comparison table.

Used by bench/run; it can also be run by hand:

    bench/parse_wrk.py parse FILE            # one wrk output -> JSON
    bench/parse_wrk.py table --dir DIR --targets "direct nginx portcullis authenticated" \
        --conns "32 128" --repeats 3 --json DIR/summary.json
    bench/parse_wrk.py budget --json DIR/summary.json --conns "32 128" [--rss-kb KB] [--ready-ms MS]

`table` expects files named DIR/<target>_c<conns>_r<repeat>.txt (repeat from 1).
For every (target, concurrency) it takes the median requests/s, the median p50
and the median p99 across repeats (each median computed independently), and
prints req/s ratios against the nginx and direct rows of the same concurrency.
`budget` checks the authenticated rows, Portcullis' peak RSS and its startup time
against the budget and prints PASS/MISS for each check.
"""

import argparse
import json
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
            errs = sum(sum(run["errors"].values()) for run in runs)
            rows[(t, c)] = {
                "rps": statistics.median(run["rps"] for run in runs),
                "p50": statistics.median(run["p50_us"] for run in runs),
                "p99": statistics.median(run["p99_us"] for run in runs),
                "rps_all": [run["rps"] for run in runs],
                "errors": errs,
                "requests": sum(run["requests"] for run in runs),
            }

    print("| target | conns | req/s (median) | p50 | p99 | vs nginx | vs direct | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        for t in targets:
            row = rows[(t, c)]
            ngx = rows.get(("nginx", c), {}).get("rps")
            direct = rows.get(("direct", c), {}).get("rps")
            print(
                "| %s | %d | %.0f | %s | %s | %s | %s | %d |"
                % (
                    t,
                    c,
                    row["rps"],
                    fmt_latency(row["p50"]),
                    fmt_latency(row["p99"]),
                    fmt_ratio(row["rps"], ngx),
                    fmt_ratio(row["rps"], direct),
                    row["errors"],
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
        ratio = auth["rps"] / ngx["rps"] if ngx["rps"] else 0.0
        checks.append((
            "authenticated req/s vs nginx, c=%d" % c,
            "%.2fx (%.0f / %.0f)" % (ratio, auth["rps"], ngx["rps"]),
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
    args = ap.parse_args()
    try:
        args.func(args)
    except (ParseError, OSError) as e:
        print("parse_wrk.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
