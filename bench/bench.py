"""
bench.py - botjobs benchmarks (run through bench/run). Starts its own PostgreSQL (default durability)
and Kafka broker, runs each workload `reps` times with the real binaries, and reports medians and
ranges, never single numbers.

Workloads (trivial trigger = reads one param, sets one lead attribute):
  w1   due-job throughput: N jobs all due, stored before the workers start; jobs/s from the first run's
       start to the last run's end, for 1 and 2 workers, no-op trigger (`return 1;`)
  w1b  the same with the trivial trigger
  w2   punctuality: N jobs published to Kafka, due evenly over S seconds starting 5 s out, a worker
       idle and waiting; lateness = run start - due time (p50/p90/p99/max) and how many started early
  w7   the sandbox's cost (bench/bench_sandbox.c, no database or Kafka), pinned to one core: runs/s
       and round-trip p50/p99 of the trivial trigger in-process (wk_js_run) and through a sandbox
       child; a respawn (spawn until the child greets); runs/s with a fresh child for every run
"""
import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import conftest  # noqa: E402  (the integration harness: Stack, Postgres, Kafka)
from confluent_kafka import Producer  # noqa: E402

BOT = 900


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"host": socket.gethostname(), "cores": os.cpu_count(), "memory_mib": mem, "cpu": model,
            "kernel": platform.release()}


def pct(values, p):
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


class Bench:
    def __init__(self, workdir):
        self.dir = pathlib.Path(workdir)
        port = conftest.free_port()
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "start", str(self.dir / "pg"), str(port)], check=True,
                       capture_output=True)
        self.pg = conftest.Postgres(port)
        kport, cport = conftest.free_port(), conftest.free_port()
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "start", str(self.dir / "kafka"), str(kport),
                        str(cport)], check=True, capture_output=True)
        version = subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        self.kafka = conftest.Kafka(f"127.0.0.1:{kport}", version)

    def close(self):
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "stop", str(self.dir / "kafka")])
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "destroy", str(self.dir / "pg")])

    def stack(self, leads):
        d = self.dir / uuid.uuid4().hex[:8]
        d.mkdir()
        s = conftest.Stack(self.pg, self.kafka, d)
        s.ctl("load", str(ROOT / "bench" / "bot"))
        s.sql("INSERT INTO leads (bot_id, id) SELECT %s, i FROM generate_series(1, %s) i", BOT, leads)
        return s


def reset(s):
    s.sql("TRUNCATE jobs, job_runs, outbox")
    s.sql("UPDATE leads SET attributes = '{}' WHERE bot_id = %s", BOT)
    s.sql("VACUUM ANALYZE jobs")


def w1(b, n, workers, trigger, reps):
    s = b.stack(leads=max(1000, n // 10))
    rates = []
    try:
        for _ in range(reps):
            reset(s)
            s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
                  " SELECT gen_random_uuid(), %s, (i %% %s) + 1, 'trigger', %s, now() - interval '1 second',"
                  " jsonb_build_object('n', i) FROM generate_series(1, %s) i",
                  BOT, max(1000, n // 10), trigger, n)
            s.sql("VACUUM ANALYZE jobs")
            for w in s.workers:
                w.stop()
            s.workers, s.procs = [], []
            for _ in range(workers):
                s.start_worker()
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= n, 600, interval=0.5,
                              what=f"{n} runs")
            first, last = s.sql("SELECT min(started_at), max(finished_at) FROM job_runs")[0]
            failed = s.sql("SELECT count(*) FROM job_runs WHERE outcome <> 'done'")[0][0]
            assert failed == 0, f"{failed} runs did not succeed"
            rates.append(round(n / (last - first).total_seconds()))
    finally:
        s.close()
    return {"jobs": n, "workers": workers, "trigger": trigger, "jobs_per_sec": summary(rates)}


def w2(b, n, spread, reps):
    s = b.stack(leads=max(1000, n))
    s.start_worker()
    results = []
    try:
        for _ in range(reps):
            reset(s)
            p = Producer({"bootstrap.servers": b.kafka.brokers, "enable.idempotence": True, "linger.ms": 5})
            start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
            for i in range(n):
                due = start + dt.timedelta(seconds=spread * i / n)
                env = {"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": BOT, "lead_id": i + 1,
                       "trigger_code": "trivial", "due_at": due.isoformat().replace("+00:00", "Z"),
                       "script_request_params": {"n": i}}
                p.produce(s.topic("jobs"), json.dumps(env).encode(), key=f"{BOT}:{i + 1}".encode())
                if i % 1000 == 0:
                    p.poll(0)
            p.flush(30)
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= n, spread + 120,
                              interval=0.5, what=f"{n} runs")
            late = [float(r[0]) * 1000 for r in s.sql(
                "SELECT extract(epoch FROM r.started_at - r.due_at) FROM job_runs r")]
            results.append({"p50_ms": pct(late, 50), "p90_ms": pct(late, 90), "p99_ms": pct(late, 99),
                            "max_ms": max(late), "early": sum(1 for x in late if x < 0)})
    finally:
        s.close()
    out = {"jobs": n, "spread_sec": spread}
    for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "early"):
        out[k] = summary([round(r[k], 3) for r in results])
    return out


def w7(runs, respawns, reps):
    exe = ROOT / "build" / "rel" / "bench" / "bench_sandbox"
    subprocess.run(["make", "-s", str(exe.relative_to(ROOT))], cwd=ROOT, check=True)
    results = []
    for _ in range(reps):
        out = subprocess.run([str(exe), "--runs", str(runs), "--respawns", str(respawns),
                              "--sandbox", str(ROOT / "bin" / "botjobs-sandbox")],
                             check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out))
    out = {"runs": runs, "respawns": respawns, "cpu": results[0]["cpu"]}
    for part in ("in_process", "sandbox", "respawn", "fresh_child_per_run"):
        out[part] = {k: summary([r[part][k] for r in results]) for k in results[0][part]}
    return out


W7_ROWS = [("in_process", "in-process wk_js_run"), ("sandbox", "through a sandbox child"),
           ("respawn", "respawn (spawn until hello)"), ("fresh_child_per_run", "a fresh child per run")]


def markdown(report):
    m = report["machine"]
    lines = [f"# botjobs benchmarks {report['date']}", "",
             f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_mib']} MiB, kernel {m['kernel']}; "
             + (f"PostgreSQL with default durability, Apache Kafka {report['kafka']}. " if report["kafka"]
                else "no database or broker (w7 only). ") +
             f"Each figure: median of {report['reps']} runs (min-max).", "",
             "| workload | figure | median | min-max |", "|---|---|---|---|"]
    for r in report["results"]:
        if r["name"] == "w7":
            for part, label in W7_ROWS:
                for k, v in r[part].items():
                    lines.append(f"| w7: trivial trigger, one core, {label} | {k} | {v['median']:.1f} "
                                 f"| {v['min']:.1f}-{v['max']:.1f} |")
        elif r["name"].startswith("w1"):
            v = r["jobs_per_sec"]
            lines.append(f"| {r['name']}: {r['jobs']} due jobs, {r['workers']} worker(s), {r['trigger']} trigger "
                         f"| jobs/s | {v['median']} | {v['min']}-{v['max']} |")
        else:
            for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "early"):
                v = r[k]
                lines.append(f"| {r['name']}: {r['jobs']} jobs over {r['spread_sec']} s | lateness {k} "
                             f"| {v['median']} | {v['min']}-{v['max']} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one repetition")
    ap.add_argument("--only", choices=["w1", "w1b", "w2", "w7"], action="append", help="run only these workloads")
    ap.add_argument("--reps", type=int, default=None)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    n1 = 20000 if a.quick else 100000
    n2, spread = (2000, 10) if a.quick else (10000, 20)
    only = set(a.only or ["w1", "w1b", "w2", "w7"])
    n7, r7 = (5000, 50) if a.quick else (20000, 200)
    results, kafka = [], None
    if "w7" in only:
        print(f"w7: the sandbox's cost, {n7} runs, {r7} respawns ...", flush=True)
        results.append(dict(name="w7", **w7(n7, r7, reps)))
        print("   ", {p: {k: v["median"] for k, v in results[-1][p].items()} for p, _ in W7_ROWS}, flush=True)
    with tempfile.TemporaryDirectory(prefix="botjobs-bench-") as tmp:
        b = Bench(tmp) if only & {"w1", "w1b", "w2"} else None
        try:
            for name, workers, trig in (("w1", 1, "noop"), ("w1", 2, "noop"), ("w1b", 1, "trivial"),
                                        ("w1b", 2, "trivial")):
                if name in only:
                    print(f"{name}: {n1} due jobs, {workers} worker(s), {trig} ...", flush=True)
                    results.append(dict(name=name, **w1(b, n1, workers, trig, reps)))
                    print("   ", results[-1]["jobs_per_sec"], flush=True)
            if "w2" in only:
                print(f"w2: {n2} jobs due over {spread} s ...", flush=True)
                results.append(dict(name="w2", **w2(b, n2, spread, reps)))
                print("   ", {k: results[-1][k]["median"] for k in ("p50_ms", "p99_ms", "max_ms", "early")},
                      flush=True)
        finally:
            if b:
                kafka = b.kafka.version
                b.close()
    report = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(),
              "kafka": kafka, "reps": reps, "quick": a.quick, "results": results}
    stem = ROOT / "bench" / "results" / f"{report['date'][:10]}-{report['machine']['host']}{'-quick' if a.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"written: {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
