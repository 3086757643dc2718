"""
profile.py - where PostgreSQL's time goes in W1: runs W1 once (n jobs all due, `workers` workers) on a
PostgreSQL with pg_stat_statements loaded, and prints each statement's calls, rows, total and mean time
and its share, per 1000 jobs, next to the CPU split of Meter. Not a benchmark (one run, pg_stat_statements
itself costs a little); a tool to decide what to change in the worker's SQL and measure before/after.

    .local/venv/bin/python bench/profile.py [--jobs 20000] [--workers 1] [--trigger noop|trivial]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time

import harness
from harness import BOT, Meter, conftest, reset, stop_workers
from workloads import start_workers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--trigger", default="noop")
    ap.add_argument("--leads", type=int, default=0, help="leads the jobs are spread over (default jobs/10)")
    ap.add_argument("--explain-ms", type=int, default=0,
                    help="print the plans (auto_explain, analyzed) of the statements slower than this")
    ap.add_argument("--perf", type=float, default=0,
                    help="perf record (call graphs, the whole machine) for this many "
                         "seconds, one second after the workers start: /tmp/botjobs-perf.data")
    args = ap.parse_args()
    n, leads = args.jobs, args.leads or max(1000, args.jobs // 10)
    with tempfile.TemporaryDirectory(prefix="botjobs-profile-") as tmp:
        b = harness.Bench(tmp)
        s = None
        try:
            b.preload_stat_statements()
            if args.explain_ms:
                with open(b.dir / "pg" / "postgresql.conf", "a") as f:
                    f.write("shared_preload_libraries = 'pg_stat_statements,auto_explain'\n"
                            f"auto_explain.log_min_duration = {args.explain_ms}\n"
                            "auto_explain.log_analyze = on\nauto_explain.log_buffers = on\n")
                b._pg("stop")
                b._pg("start", str(b.pg_port))
            s = b.stack(leads=leads)
            s.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            reset(s)
            s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
                  " SELECT gen_random_uuid(), %s, (i %% %s) + 1, 'trigger', %s, now() - interval '1 second',"
                  " jsonb_build_object('n', i) FROM generate_series(1, %s) i", BOT, leads, args.trigger, n)
            s.sql("VACUUM ANALYZE jobs")
            s.sql("SELECT pg_stat_statements_reset()")
            meter = Meter(b, s)
            meter.start()
            start_workers(s, args.workers)
            if args.perf:
                time.sleep(1)
                # The whole machine (-a): sandbox children come and go (max runs per child), and a pid
                # list naming one that has exited makes perf fail; everything running is the benchmark.
                subprocess.run(["perf", "record", "-q", "-a", "-g", "-o", "/tmp/botjobs-perf.data", "--",
                                "sleep", str(args.perf)], check=True)
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= n, 900, interval=0.5,
                              what=f"{n} runs")
            cost = meter.stop(n)
            first, last = s.sql("SELECT min(started_at), max(finished_at) FROM job_runs")[0]
            rows = s.sql("SELECT calls, rows, total_exec_time, mean_exec_time, shared_blks_dirtied, wal_bytes,"
                         " left(regexp_replace(query, '\\s+', ' ', 'g'), 110)"
                         " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                         " WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 25")
            stop_workers(s)
            if args.explain_ms:
                for log in sorted((b.dir / "pg").glob("**/*.log")):
                    text = log.read_text(errors="replace")
                    if "duration:" in text:
                        with open("/tmp/botjobs-profile-plans.log", "w") as f:
                            f.write(text)
                        print("plans: /tmp/botjobs-profile-plans.log")
        finally:
            if s is not None:
                stop_workers(s)  # they outlive the stack otherwise (a failed perf left two spinning)
            b.close()
    k = 1000 / n
    total = sum(r[2] for r in rows)
    print(f"{n} jobs, {args.workers} worker(s), {args.trigger}: {n / (last - first).total_seconds():.0f} jobs/s")
    print(json.dumps(cost))
    print(f"statement time per 1k jobs: {total * k:.1f} ms")
    print(f"{'calls/1k':>9} {'rows/call':>9} {'ms/1k':>8} {'mean ms':>8} {'share':>6} {'dirtied/1k':>10}"
          f" {'WAL B/job':>9}  query")
    for calls, nrows, tot, mean, dirtied, wal, q in rows:
        print(f"{calls * k:9.1f} {nrows / max(calls, 1):9.1f} {tot * k:8.1f} {mean:8.3f} {100 * tot / total:5.1f}%"
              f" {dirtied * k:10.1f} {int(wal) / n:9.0f}  {q}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
