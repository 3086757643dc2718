"""
bench.py - botjobs benchmarks (issue 7; run through bench/run or make bench). Starts its own PostgreSQL
(default durability: fsync on, synchronous_commit on) and a real Kafka broker (the producer publishes with
acks=all, idempotent), runs each workload `reps` times with the real binaries, and writes
<out>/<date>-<host>[-quick][-tag].json and .md (median and min-max of the repetitions, never one number,
each target of the issue with pass/miss) and PNG plots (gnuplot). Trivial trigger = reads one param, sets one
lead attribute (bench/bot).

  w1   due-job throughput: N jobs all due, stored before the workers start; jobs/s from the first run's start
       to the last run's end, for 1, 2 and 4 workers (--workers), no-op trigger (`return 1;`)
  w1b  the same with the trivial trigger
  w2   punctuality: N jobs published to Kafka, due evenly over S seconds starting 5 s out, a worker idle and
       waiting; lateness = run start - due time (p50/p90/p99/max) and how many started early
  w3   end-to-end latency: a steady 1,000 schedule calls/s over HTTP (bench/loadgen.c, open loop, 16
       connections) for 30 s, due now, one worker; HTTP send (client clock) -> trigger start (the worker's
       job_runs.started_at, same host clock): p50/p90/p99/max; and the 202 latency
  w4   ingest capacity: for 16, 64 and 256 connections, the closed-loop maximum, then open-loop steps of
       the rate at fractions of it; capacity = the highest rate answered 202 (durable in Kafka) with
       p99 < 50 ms counted from each request's due time, no worker running
  w4k  the workers' side of ingest: N schedule envelopes waiting in a 6-partition topic, then the workers
       start; jobs/s stored (consume -> validate -> INSERT -> offsets), for the worker counts of w1
       (called w3 in result files before 2026-11-26)
  w5   broadcast: one broadcast over 100,000 and 1,000,000 leads (--w5-leads) whose per-lead condition
       holds for every other lead; leads/s and total time (due time -> the last chunk's commit)
  w6   backlog: w2 once without and then `reps` times with 10,000,000 future jobs stored (due over the next
       30 days from 1 h out; inserted straight into the jobs table, indexes rebuilt, VACUUM ANALYZE): the
       lateness and the worker's claim cost per call (pg_stat_statements: PostgreSQL is restarted with it
       for w6, which runs last) and EXPLAIN ANALYZE of that claim with 256 due jobs, without and with
  w7   the sandbox's cost (bench/bench_sandbox.c, no database or Kafka), pinned to one core: runs/s and
       round-trip p50/p99 of the trivial trigger in-process (wk_js_run) and through a sandbox child; a
       respawn (spawn until the child greets); runs/s with a fresh child for every run
  Memory: in every workload, the peak RSS (VmHWM, read every second) of the producer, the workers and each
       sandbox child (the workers' children), separately.

For w1 and w4k each run also records where the CPU went (PostgreSQL's processes, the workers, the Kafka
broker: CPU seconds per 1000 jobs), PostgreSQL's WAL bytes, transactions (read-only ones included) and WAL
flushes (pg_stat_wal.wal_sync: what durable commits cost) per job; w4 records the producer's, Kafka's and
the load generator's CPU per 1000 requests, so a run on a small shared machine still says what a bigger one
would be bound by.
"""
import argparse
import datetime as dt
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import harness
import plots
import workloads as wl

ALL = ["w1", "w1b", "w2", "w3", "w4", "w4k", "w5", "w6", "w7"]

# (workload, which result, figure label, value: result -> summary, op, limit, unit). Pass/miss is judged on
# the median of the repetitions (on the largest value for "started early").
TARGETS = [
    ("w1", lambda r: r["workers"] == 2, "W1: 2 workers, no-op trigger", lambda r: r["jobs_per_sec"], ">=", 20000,
     "jobs/s"),
    ("w1b", lambda r: r["workers"] == 2, "W1b: 2 workers, trivial trigger", lambda r: r["jobs_per_sec"], ">=",
     10000, "jobs/s"),
    ("w2", None, "W2: lateness p99", lambda r: r["p99_ms"], "<=", 5, "ms"),
    ("w2", None, "W2: lateness max", lambda r: r["max_ms"], "<=", 20, "ms"),
    ("w2", None, "W2: started early (largest of the runs)", lambda r: r["early"], "max==", 0, "jobs"),
    ("w3", None, "W3: HTTP send -> trigger start p99", lambda r: r["e2e_p99_ms"], "<=", 10, "ms"),
    ("w3", None, "W3: HTTP 202 p99", lambda r: r["http_p99_ms"], "<=", 5, "ms"),
    ("w4", None, "W4: capacity at 256 connections (p99 < 50 ms)",
     lambda r: r["conns"].get("256", {}).get("capacity_per_s"), ">=", 30000, "requests/s"),
    ("w5", None, "W5: broadcast", lambda r: r["leads_per_s"], ">=", 50000, "leads/s"),
]
MEMORY_TARGETS = {"producer_mib": 64, "worker_mib": 64, "sandbox_mib": 16}


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 1000 and unit not in ("jobs/s", "leads/s", "requests/s"):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{round(v):,}"


def cell(sm, unit=""):
    """median (min-max) of a summary."""
    if not isinstance(sm, dict) or sm.get("median") is None:
        return "-"
    if sm["min"] == sm["max"]:
        return fmt(sm["median"], unit)
    return f"{fmt(sm['median'], unit)} ({fmt(sm['min'], unit)}-{fmt(sm['max'], unit)})"


def judge(v, op, limit):
    if v is None:
        return "miss (no value)"
    ok = v >= limit if op == ">=" else v <= limit if op in ("<=", "max<=") else v == limit
    return "**pass**" if ok else "**miss**"


def target_rows(report):
    rows = []
    res = report["results"]
    for name, pick, label, value, op, limit, unit in TARGETS:
        for r in res:
            if r["name"] != name or "error" in r or (pick and not pick(r)):
                continue
            sm = value(r)
            if name == "w5":
                label = f"W5: broadcast over {r['leads']:,} leads"
            v = sm.get("max") if op == "max==" else sm.get("median") if sm else None
            rows.append((label, f"{cell(sm, unit)} {unit}", f"{'=' if op == 'max==' else op.replace('>=', '≥').replace('<=', '≤')}"
                         f" {limit:,} {unit}", judge(v, op, limit)))
    w2 = next((r for r in res if r["name"] == "w2" and "error" not in r), None)
    for r in res:
        if r["name"] == "w6" and "error" not in r:
            base = w2["p99_ms"]["median"] if w2 else r["without"]["p99_ms"]
            src = "W2's median p99" if w2 else "this w6's own run without the backlog"
            rows.append((f"W6: lateness p99 with {r['backlog']:,} future jobs", cell(r["p99_ms"], "ms"),
                         f"≤ 2 × {fmt(base, 'ms')} ms ({src})", judge(r["p99_ms"]["median"], "<=", 2 * base)))
            c0, c1 = (r["without"] or {}).get("claim"), r.get("claim")
            if c0 and c1:
                rows.append(("W6: the worker's claim, mean per call (pg_stat_statements)",
                             f"{fmt(c1['mean_ms'], 'ms')} ms with, {fmt(c0['mean_ms'], 'ms')} without",
                             "≤ 2 × without (not degraded)", judge(c1["mean_ms"], "<=", 2 * c0["mean_ms"])))
    for role, limit in MEMORY_TARGETS.items():
        worst = None
        for r in res:
            sm = r.get("memory", {}).get(role)
            if sm and sm.get("median") is not None and (worst is None or sm["median"] > worst[1]["median"]):
                worst = (r["name"], sm)
        if worst:
            rows.append((f"Memory: {role[:-4]} peak RSS{' (each child)' if role == 'sandbox_mib' else ''}, "
                         f"largest in any workload ({worst[0]})", cell(worst[1], "MiB") + " MiB",
                         f"≤ {limit} MiB", judge(worst[1]["median"], "<=", limit)))
    return rows


def section(r):
    """The Markdown lines of one workload's result."""
    n = r["name"]
    if "error" in r:
        return [f"**{n} failed**: `{r['error']}`"]
    if n in ("w1", "w1b"):
        return [f"| {n}: {r['jobs']:,} due jobs, {r['workers']} worker(s), {r['trigger']} trigger | jobs/s "
                f"| {cell(r['jobs_per_sec'], 'jobs/s')} |"]
    if n == "w4k":
        return [f"| w4k: {r['jobs']:,} jobs stored from {r['partitions']} partitions, {r['workers']} worker(s) "
                f"| jobs/s | {cell(r['jobs_per_sec'], 'jobs/s')} |"]
    if n == "w2":
        return [f"| w2: {r['jobs']:,} jobs over {r['spread_sec']} s | lateness {k[:-3] if k.endswith('_ms') else k}"
                f"{' ms' if k.endswith('_ms') else ''} | {cell(r[k], 'ms')} |"
                for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "early")] + (
            [f"| w2: {r['jobs']:,} jobs over {r['spread_sec']} s | per repetition: PostgreSQL checkpoints during it; "
             f"runs whose job was stored < 100 ms before its due time | {r['checkpoints']}; {r['stored_late']} |"]
            if "checkpoints" in r else []) + [
            f"| w2: {r['jobs']:,} jobs over {r['spread_sec']} s | repetition {i + 1}: runs > 20 ms late (due "
            f"between), max; log lines around them (in the .json) | {t['late_runs']} ({t['first_due']} - "
            f"{t['last_due']}), {t['max_ms']} ms; worker {len(t['worker_log'])}, PostgreSQL {len(t['pg_log'])}, "
            f"broker warnings {len(t['kafka_warnings'])} |"
            for i, t in enumerate(r.get("tails") or []) if t]
    if n == "w3":
        lab = f"w3: {r['rate']:,}/s for {r['secs']} s, {r['conns']} connections, {r['workers']} worker"
        names = [("e2e_p50_ms", "HTTP send -> trigger start p50 ms"), ("e2e_p90_ms", "send -> start p90 ms"),
                 ("e2e_p99_ms", "send -> start p99 ms"), ("e2e_max_ms", "send -> start max ms"),
                 ("http_p50_ms", "HTTP 202 p50 ms"), ("http_p99_ms", "HTTP 202 p99 ms"),
                 ("http_max_ms", "HTTP 202 max ms"), ("due_to_start_p50_ms", "due time (the producer took the call) -> start p50 ms"),
                 ("due_to_start_p99_ms", "due time -> start p99 ms"),
                 ("accepted_to_stored_p50_ms", "producer took the call -> stored by the worker p50 ms"),
                 ("accepted_to_stored_p99_ms", "took the call -> stored p99 ms"),
                 ("stored_to_start_p50_ms", "stored -> trigger start p50 ms"),
                 ("stored_to_start_p99_ms", "stored -> trigger start p99 ms"),
                 ("sent_per_s", "calls sent per s"), ("accepted", "answered 202"), ("not_202", "other answers")]
        return [f"| {lab} | {label} | {cell(r[k], 'ms')} |" for k, label in names]
    if n == "w4":
        out = []
        for conns, c in r["conns"].items():
            out += [f"| w4: {conns} connections | capacity: 202/s with p99 < {r['p99_limit_ms']} ms "
                    f"| {cell(c['capacity_per_s'], 'requests/s')} |",
                    f"| w4: {conns} connections | p99 ms at that rate | {cell(c['p99_ms_at_capacity'], 'ms')} |",
                    f"| w4: {conns} connections | closed loop: 202/s (p99 ms) | "
                    f"{cell(c['closed_loop_per_s'], 'requests/s')} ({cell(c['closed_loop_p99_ms'], 'ms')}) |",
                    f"| w4: {conns} connections | CPU ms per 1,000 calls, closed loop: producer / Kafka / loadgen | "
                    f"{cell(c['producer_cpu_ms_per_1k'])} / {cell(c['kafka_cpu_ms_per_1k'])} / "
                    f"{cell(c['loadgen_cpu_ms_per_1k'])} |"]
        return out
    if n == "w5":
        return [f"| w5: broadcast over {r['leads']:,} leads ({r['matched']:,} matched) | leads/s "
                f"| {cell(r['leads_per_s'], 'leads/s')} |",
                f"| w5: broadcast over {r['leads']:,} leads | total s | {cell(r['total_s'], 's')} |"]
    if n == "w6":
        lab = f"w6: {r['jobs']:,} jobs over {r['spread_sec']} s"
        w = r["without"]
        out = [f"| {lab}, {r['backlog']:,} future jobs | lateness {k[:-3] if k.endswith('_ms') else k}"
               f"{' ms' if k.endswith('_ms') else ''} | {cell(r[k], 'ms')} (without: {fmt(w[k], 'ms')}) |"
               for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "early")]
        for when, x in (("without", w), ("with", r)):
            c = x.get("claim")
            if c:
                out.append(f"| w6: the worker's claim as it ran, {when} the backlog (pg_stat_statements) "
                           f"| per call: mean / max ms, blocks | {fmt(c['mean_ms'], 'ms')} / {fmt(c['max_ms'], 'ms')}"
                           f", {c['blocks_per_call']:,} ({c['calls']:,} calls) |")
            for e in (x.get("explain"), x.get("explain_partial")):
                if e and "error" in e:
                    out.append(f"| w6: EXPLAIN ANALYZE of the claim | - | {e['error']} |")
                elif e:
                    out.append(f"| w6: EXPLAIN ANALYZE of the claim: {e['due']} due, batch {e['batch']}, {when} the "
                               f"backlog | execution / planning ms | {fmt(e['exec_ms'], 'ms')} / "
                               f"{fmt(e['plan_ms'], 'ms')} |")
        ld = r["load"]
        out.append(f"| w6: storing the backlog | insert / index / vacuum s, table MiB | {ld['insert_s']} / "
                   f"{ld['index_s']} / {ld['vacuum_analyze_s']}, {ld['table_mib']:,} |")
        return out
    if n == "w7":
        out = []
        for part, label in (("in_process", "in-process (one engine, state reused)"), ("sandbox", "through a sandbox child"),
                            ("respawn", "respawn (spawn until hello)"),
                            ("fresh_child_per_run", "a fresh child per run")):
            for k, v in r[part].items():
                out.append(f"| w7: trivial trigger, one core, {label} | {k} | {cell(v)} |")
        return out
    return []


def markdown(report, pngs):
    m = report["machine"]
    d = report["durability"]
    lines = [f"# botjobs benchmarks {report['date']}", "",
             f"**Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_mib']:,} MiB, kernel {m['kernel']}, host "
             f"{m['host']}. **Software**: PostgreSQL {report['postgres'] or '-'}"
             + (f" (fsync={d['fsync']}, synchronous_commit={d['synchronous_commit']}, "
                f"full_page_writes={d['full_page_writes']}, shared_buffers={d['shared_buffers']})" if d else "")
             + f", Apache Kafka {report['kafka'] or '-'} (one broker; the producer: acks=all, idempotent). "
             f"**Commit** {report['commit']}. **Mode**: {'quick' if report['quick'] else 'full'}, "
             f"{report['reps']} repetition(s) per workload; figures are median (min-max). Load average before "
             f"{report['loadavg_before']}, after {report['loadavg_after']}; the run took "
             f"{report['duration_s'] / 60:.1f} min.", ""]
    rows = target_rows(report)
    if rows:
        lines += ["## Targets (issue 7)", "", "| figure | measured | target | |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows]
        lines.append("")
    lines += ["## Every figure", "", "| workload | figure | median (min-max) |", "|---|---|---|"]
    order = {n: i for i, n in enumerate(ALL)}
    for r in sorted(report["results"], key=lambda r: order.get(r["name"], 99)):
        lines += section(r)
    lines.append("")
    mems = [r for r in report["results"] if r.get("memory")]
    if mems:
        lines += ["## Memory: peak RSS (VmHWM), MiB", "",
                  "| workload | producer | worker | sandbox child (largest) | sandbox children seen |",
                  "|---|---|---|---|---|"]
        for r in mems:
            mm = r["memory"]

            def mc(role, mm=mm):
                sm = mm.get(role)
                if not sm or sm.get("median") is None:
                    return "-"
                return cell(sm, "MiB") + ("" if sm["median"] <= MEMORY_TARGETS[role] else " **(over target)**")
            lines.append(f"| {label_of(r)} | {mc('producer_mib')} | {mc('worker_mib')} | {mc('sandbox_mib')} "
                         f"| {mm.get('sandbox_children', '-')} |")
        lines.append("")
    lines += ["## Wall time and machine load per workload", "",
              "Load average (/proc/loadavg: 1, 5, 15 min) when each workload started and ended; on this 2-core "
              "machine anything above ~1 besides the benchmark itself means other work competed for the CPU.", "",
              "| workload | wall time s (all repetitions) | load avg at start | load avg at end |", "|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {label_of(r)}{' (failed)' if 'error' in r else ''} | {r.get('wall_s', '-')} "
                     f"| {' '.join(str(x) for x in r.get('loadavg_start', []))} "
                     f"| {' '.join(str(x) for x in r.get('loadavg_end', []))} |")
    lines.append("")
    costs = [r for r in report["results"] if r.get("costs")]
    if costs:
        lines += ["## Where the CPU went", "", "Median of the runs; CPU seconds per 1000 jobs, all on the same machine.",
                  "", "| workload | postgres | workers | kafka | WAL bytes/job | transactions/1k jobs | WAL flushes/1k "
                  "jobs | load avg (1 min) after each run |", "|---|---|---|---|---|---|---|---|"]
        for r in costs:
            def med(f, r=r):
                vals = [f(c) for c in r["costs"] if f(c) is not None]
                return round(statistics.median(vals), 3) if vals else None
            lines.append(f"| {label_of(r)} | {med(lambda c: c['cpu_s_per_1k_jobs']['postgres'])} "
                         f"| {med(lambda c: c['cpu_s_per_1k_jobs']['workers'])} "
                         f"| {med(lambda c: c['cpu_s_per_1k_jobs']['kafka'])} | {med(lambda c: c['wal_bytes_per_job'])} "
                         f"| {med(lambda c: c['transactions_per_1k_jobs'])} "
                         f"| {med(lambda c: c['wal_syncs_per_1k_jobs'])} "
                         f"| {', '.join(str(c.get('loadavg_1m_after', '?')) for c in r['costs'])} |")
        lines.append("")
    for r in report["results"]:
        for k in ("explain", "explain_partial"):
            e = r.get(k) if r["name"] == "w6" else None
            if e and e.get("plan"):
                lines += [f"## W6: the claim's plan with the backlog, {e['due']} jobs due, batch {e['batch']}", "",
                          "```", e["plan"], "```", ""]
    if pngs:
        lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in pngs.items()] + [""]
    return "\n".join(lines)


def label_of(r):
    n = r["name"]
    if "error" in r:  # a failed workload has no figures, its sizes included
        return n
    if n in ("w1", "w1b"):
        return f"{n}: {r['workers']} worker(s), {r['trigger']}"
    if n == "w4k":
        return f"w4k: {r['workers']} worker(s)"
    if n == "w5":
        return f"w5: {r['leads']:,} leads"
    return n


def run(name, results, fn, *args):
    shown = [x for x in args if not isinstance(x, harness.Bench)]
    print(f"{name} {' '.join(str(x) for x in shown)} ...", flush=True)
    t0, load0 = time.monotonic(), wl.loadavg()
    try:
        r = dict(name=name, **fn(*args))
    except Exception as e:  # one failed workload does not lose the others' results
        traceback.print_exc()
        r = {"name": name, "error": f"{type(e).__name__}: {e}"}
    r["wall_s"] = round(time.monotonic() - t0, 1)
    # /proc/loadavg (1, 5, 15 min) when the workload started and ended: other work on a shared machine shows.
    r["loadavg_start"], r["loadavg_end"] = load0, wl.loadavg()
    results.append(r)
    brief = {k: v["median"] for k, v in r.items() if isinstance(v, dict) and "median" in v}
    print(f"    {r['wall_s']} s", r.get("error") or brief, flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition: each workload < 1 min")
    ap.add_argument("--only", choices=ALL, action="append", help="run only these workloads (repeatable)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per workload (default 3, quick 1)")
    ap.add_argument("--workers", default=None, help="worker counts of w1, w1b and w4k (default 1,2,4)")
    ap.add_argument("--jobs", type=int, default=None, help="jobs per w1/w1b/w4k run (default 100000, quick 10000)")
    ap.add_argument("--w4-conns", default="16,64,256", help="connection counts of w4")
    ap.add_argument("--w5-leads", default=None, help="lead counts of w5 (default 100000,1000000; quick 20000)")
    ap.add_argument("--w6-backlog", type=int, default=None, help="future jobs of w6 (default 10000000, quick 200000)")
    ap.add_argument("--tag", default="", help="added to the result file names (e.g. scaleout)")
    ap.add_argument("--out", default=str(harness.ROOT / "bench" / "results"), help="where the results go")
    ap.add_argument("--no-plots", action="store_true", help="no PNGs (when gnuplot is missing)")
    a = ap.parse_args()
    q = a.quick
    reps = a.reps or (1 if q else 3)
    counts = [int(x) for x in (a.workers or "1,2,4").split(",") if x]
    n1 = a.jobs or (10000 if q else 100000)
    n2, spread = (2000, 10) if q else (10000, 20)
    n3 = 5 if q else 30
    step4 = 1.5 if q else 5
    leads5 = [int(x) for x in (a.w5_leads or ("20000" if q else "100000,1000000")).split(",") if x]
    backlog = a.w6_backlog or (200000 if q else 10000000)
    n7, r7 = (5000, 50) if q else (20000, 200)
    only = set(a.only or ALL)
    if not a.no_plots and not plots.shutil.which("gnuplot"):
        sys.exit("bench: gnuplot is missing: BOTJOBS_DEPS_BENCH=1 bash scripts/deps.sh (make bench does it), "
                 "or --no-plots")
    out_dir = pathlib.Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before, t_start = wl.loadavg(), time.monotonic()
    results, kafka, postgres, durability = [], None, None, None
    if "w7" in only:
        run("w7", results, wl.w7, n7, r7, reps)
    with tempfile.TemporaryDirectory(prefix="botjobs-bench-") as tmp:
        b = harness.Bench(tmp) if only - {"w7"} else None
        try:
            if b:
                kafka, postgres, durability = b.kafka.version, b.pg_version(), b.pg_settings()
            for name, trig in (("w1", "noop"), ("w1b", "trivial")):
                if name in only:
                    for c in counts:
                        run(name, results, wl.w1, b, n1, c, trig, reps)
            if "w4k" in only:
                for c in counts if not q else counts[:1]:
                    run("w4k", results, wl.w4k, b, n1, c, reps)
            if "w2" in only:
                run("w2", results, wl.w2, b, n2, spread, reps)
            if "w3" in only:
                run("w3", results, wl.w3, b, 1000, n3, 16, reps)
            if "w4" in only:
                run("w4", results, wl.w4, b, [int(x) for x in a.w4_conns.split(",")], step4, reps)
            if "w5" in only:
                for n in leads5:
                    run("w5", results, wl.w5, b, n, reps)
            if "w6" in only:  # last: it restarts PostgreSQL with pg_stat_statements
                run("w6", results, wl.w6, b, backlog, n2, spread, reps)
        finally:
            if b:
                b.close()
    sha = subprocess.run(["git", "-C", str(harness.ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(harness.ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    report = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": harness.machine(),
              "postgres": postgres, "durability": durability, "kafka": kafka, "reps": reps, "quick": q,
              "commit": sha + (" (with uncommitted changes)" if dirty else ""), "loadavg_before": load_before,
              "loadavg_after": wl.loadavg(), "duration_s": round(time.monotonic() - t_start), "results": results}
    stem = out_dir / (f"{report['date'][:10]}-{report['machine']['host']}"
                      f"{'-quick' if q else ''}{'-' + a.tag if a.tag else ''}")
    pngs = {} if a.no_plots else plots.draw(results, stem)
    report["plots"] = pngs
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report, pngs)
    stem.with_suffix(".md").write_text(md)
    print(md)
    print(f"written: {stem}.json, {stem}.md" + "".join(f", {out_dir / p}" for p in pngs.values()))
    # A smoke run (CI) fails when a workload did not complete or did not draw its plots.
    failed = [r["name"] for r in results if "error" in r]
    want = {"w1": "w1_throughput", "w1b": "w1_throughput", "w2": "w2_hist", "w3": "w3_hist", "w4": "w4_knee",
            "w6": "w6_hist"}
    lacking = [] if a.no_plots else [f"the plot {p} of {w}" for w, p in want.items()
                                     if w in only and (p not in pngs or not (out_dir / pngs[p]).is_file())]
    if failed or lacking:
        sys.exit(f"bench: failed: {', '.join(failed + lacking)}")


if __name__ == "__main__":
    main()
