"""
workloads.py - the workloads of bench.py (issue 7), each run `reps` times on the services of a Bench.
Each returns a dict: its parameters, every figure as a summary of the repetitions (median, min, max, runs),
the peak memory of the producer, the workers and each sandbox child, and what the plots need.
"""
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid

from confluent_kafka import Producer

import harness
from harness import BOT, Meter, RssSampler, conftest, distribution, lateness_stats, memory_summary, pct, reset, \
    stop_workers, summary, tree_cpu

PRODUCER_ARGS = ("--rate-limit=0", "--max-per-ip=0", "--access-log=true")
"""The producer as deployed, but without the per-token rate limit (200/s by default) and the per-address
connection cap: the load generator is one token from one address."""


def rfc3339(t):
    return t.isoformat().replace("+00:00", "Z")


def start_workers(s, n, mem=None):
    for _ in range(n):
        w = s.start_worker()
        if mem:
            mem.watch(w.p.pid, "worker")


def timeline(s, bucket=0.5):
    """Runs finished per second over the run, in buckets of `bucket` seconds (the throughput plot)."""
    rows = s.sql("WITH f AS (SELECT min(started_at) t0 FROM job_runs)"
                 " SELECT floor(extract(epoch FROM finished_at - f.t0) / %s)::int b, count(*) FROM job_runs, f"
                 " GROUP BY b ORDER BY b", bucket)
    return [[round(b * bucket, 2), round(n / bucket)] for b, n in rows]


# --- W1, W1b: due-job throughput ---------------------------------------------------------------------------

def w1(b, n, workers, trigger, reps):
    """n jobs already due when the workers start; jobs/s from the first run's start to the last run's end."""
    s = b.stack(leads=max(1000, n // 10))
    rates, costs, mems, lines = [], [], [], []
    try:
        for _ in range(reps):
            # The previous run's workers stop first: left running, they would start on these jobs early.
            stop_workers(s)
            reset(s)
            s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
                  " SELECT gen_random_uuid(), %s, (i %% %s) + 1, 'trigger', %s, now() - interval '1 second',"
                  " jsonb_build_object('n', i) FROM generate_series(1, %s) i",
                  BOT, max(1000, n // 10), trigger, n)
            s.sql("VACUUM ANALYZE jobs")
            meter, mem = Meter(b, s), RssSampler()
            meter.start()
            start_workers(s, workers, mem)
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= n, 900, interval=0.5,
                              what=f"{n} runs")
            costs.append(meter.stop(n))
            mems.append(mem.stop())
            first, last = s.sql("SELECT min(started_at), max(finished_at) FROM job_runs")[0]
            failed = s.sql("SELECT count(*) FROM job_runs WHERE outcome <> 'done'")[0][0]
            assert failed == 0, f"{failed} runs did not succeed"
            rates.append(round(n / (last - first).total_seconds()))
            lines.append(timeline(s))
    finally:
        stop_workers(s)
        s.close()
    med = sorted(range(len(rates)), key=lambda i: rates[i])[len(rates) // 2]
    return {"jobs": n, "workers": workers, "trigger": trigger, "jobs_per_sec": summary(rates), "costs": costs,
            "memory": memory_summary(mems), "timeline": lines[med]}


# --- w4k: ingest from Kafka (the workers' side of W4) -------------------------------------------------------

def w4k(b, n, workers, reps):
    """Kafka -> validate -> PostgreSQL, with n schedule envelopes waiting in a 6-partition topic before the
    workers start; jobs/s stored from the first stored job to the last."""
    s = b.stack(leads=1000)
    rates, costs, mems = [], [], []
    try:
        for _ in range(reps):
            stop_workers(s)
            reset(s)
            # Fresh topics and group per run: the workers read exactly this run's messages from the start.
            tag = uuid.uuid4().hex[:8]
            s.prefix, s.group = f"b{tag}.", f"bench-{tag}"
            s.env.update(BOTJOBS_TOPIC_PREFIX=s.prefix, BOTJOBS_GROUP_ID=s.group, BOTJOBS_PARTITIONS="6")
            s.ctl("topics")
            topic = s.topic("jobs")
            p = Producer({"bootstrap.servers": b.kafka.brokers, "enable.idempotence": True, "linger.ms": 20,
                          "compression.type": "lz4"})
            due = rfc3339(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
            for i in range(n):
                lead = i % 1000 + 1
                env = {"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": BOT, "lead_id": lead,
                       "trigger_code": "trivial", "due_at": due, "script_request_params": {"n": i}}
                while True:
                    try:
                        p.produce(topic, json.dumps(env).encode(), key=f"{BOT}:{lead}".encode())
                        break
                    except BufferError:  # the client's queue is full: let deliveries drain it
                        p.poll(0.2)
                if i % 1000 == 0:
                    p.poll(0)
            assert p.flush(120) == 0, "not every message reached Kafka"
            meter, mem = Meter(b, s), RssSampler()
            meter.start()
            start_workers(s, workers, mem)
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM jobs")[0][0] >= n, 600, interval=0.2,
                              what=f"{n} stored jobs")
            costs.append(meter.stop(n))
            mems.append(mem.stop())
            first, last = s.sql("SELECT min(created_at), max(created_at) FROM jobs")[0]
            rates.append(round(n / max((last - first).total_seconds(), 1e-3)))
    finally:
        stop_workers(s)
        s.close()
    return {"jobs": n, "workers": workers, "partitions": 6, "jobs_per_sec": summary(rates), "costs": costs,
            "memory": memory_summary(mems)}


# --- W2: punctuality ---------------------------------------------------------------------------------------

def w2_pass(b, s, n, spread, lead_base=0):
    """Publishes n jobs due evenly over `spread` s starting 5 s out, waits for their runs; lateness in ms."""
    s.sql("TRUNCATE job_runs")
    p = Producer({"bootstrap.servers": b.kafka.brokers, "enable.idempotence": True, "linger.ms": 5})
    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    for i in range(n):
        lead = lead_base + i + 1
        env = {"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": BOT, "lead_id": lead,
               "trigger_code": "trivial", "due_at": rfc3339(start + dt.timedelta(seconds=spread * i / n)),
               "script_request_params": {"n": i}}
        p.produce(s.topic("jobs"), json.dumps(env).encode(), key=f"{BOT}:{lead}".encode())
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0, "not every message reached Kafka"
    conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= n, spread + 120, interval=0.5,
                      what=f"{n} runs")
    return [float(r[0]) * 1000 for r in s.sql("SELECT extract(epoch FROM r.started_at - r.due_at) FROM job_runs r")]


def lateness_summary(results):
    out = {}
    for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "early"):
        out[k] = summary([None if r[k] is None else round(r[k], 3) for r in results])
    return out


def w2(b, n, spread, reps):
    s = b.stack(leads=max(1000, n))
    mem = RssSampler()
    results, pooled = [], []
    try:
        start_workers(s, 1, mem)
        for _ in range(reps):
            reset(s)
            ckpt = checkpoints(s)
            late = w2_pass(b, s, n, spread)
            pooled += late
            results.append({**lateness_stats(late), "checkpoints": checkpoints(s) - ckpt,
                            "stored_late": stored_late(s), "tail": tail_evidence(b, s)})
    finally:
        mems = [mem.stop()]
        stop_workers(s)
        s.close()
    return {"jobs": n, "spread_sec": spread, **lateness_summary(results), "memory": memory_summary(mems),
            "lateness": distribution(pooled),
            # Why a pass has a tail, when it has one: PostgreSQL checkpoints during the pass (their fsyncs
            # stall commits), and runs whose job was stored less than 100 ms before its due time.
            "checkpoints": [r["checkpoints"] for r in results], "stored_late": [r["stored_late"] for r in results],
            "tails": [r["tail"] for r in results]}


TAIL_MS = 20  # a run later than W2's max target is a tail worth the logs


def log_lines(path, since, until, parse, keep, limit=30):
    """Lines of a log whose leading timestamp (parse(line) -> aware datetime or None) is in [since, until]
    and that keep(line) accepts; at most `limit`, each cut to 300 characters."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                t = parse(line)
                if t is not None and since <= t <= until and keep(line):
                    out.append(line.rstrip()[:300])
                    if len(out) >= limit:
                        break
    except OSError as e:
        out.append(f"({path}: {e})")
    return out


def _ts(text, fmt):
    try:
        return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def tail_evidence(b, s):
    """When a W2 pass had runs more than TAIL_MS late (an intermittent tail, docs/benchmarks.md): which runs,
    and what the worker, PostgreSQL and the broker logged around them — so that the next tail can be
    explained. None for a pass without one."""
    row = s.sql("SELECT count(*), min(r.due_at), max(r.due_at), max(extract(epoch FROM r.started_at - r.due_at))"
                " FROM job_runs r WHERE r.started_at - r.due_at > %s * interval '1 millisecond'", TAIL_MS)[0]
    if not row[0]:
        return None
    since, until = row[1] - dt.timedelta(seconds=3), row[2] + dt.timedelta(seconds=3)
    worker = log_lines(s.dir / "worker0.log", since, until,
                       lambda x: _ts(x[:23], "%Y-%m-%dT%H:%M:%S.%f"),
                       lambda x: " info " not in x[:40] and " debug " not in x[:40])
    pg = log_lines(b.dir / "pg" / "server.log", since, until,
                   lambda x: _ts(x[:23], "%Y-%m-%d %H:%M:%S.%f"), lambda x: True)
    kafka = log_lines(b.dir / "kafka" / "kafka.log", since, until,
                      lambda x: _ts(x[1:24], "%Y-%m-%d %H:%M:%S,%f"),
                      lambda x: "WARN" in x[:40] or "ERROR" in x[:40])
    return {"late_runs": row[0], "first_due": rfc3339(row[1]), "last_due": rfc3339(row[2]),
            "max_ms": round(float(row[3]) * 1000, 1), "worker_log": worker, "pg_log": pg, "kafka_warnings": kafka}


def checkpoints(s):
    return s.sql("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")[0][0]


def stored_late(s):
    return s.sql("SELECT count(*) FROM job_runs r JOIN jobs j USING (job_id)"
                 " WHERE j.created_at > r.due_at - interval '100 ms'")[0][0]


# --- W3: end-to-end latency over HTTP ----------------------------------------------------------------------

def loadgen(s, token, conns, rate, secs, records=None, drain=10, leads=1000):
    port = s.producer.http.rsplit(":", 1)[1]
    argv = [str(harness.tool("loadgen")), "--port", port, "--path", f"/api/v1/bots/{BOT}/jobs/schedule",
            "--token", token, "--conns", str(conns), "--rate", str(rate), "--duration", str(secs),
            "--drain", str(drain), "--leads", str(leads)]
    if records:
        argv += ["--records", str(records)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def http_stack(b, workers, mem):
    s = b.stack(leads=1000)
    try:
        token = s.ctl("token", "create", "Bench Co", "bench").strip()
        p = s.start_producer(*PRODUCER_ARGS)
        mem.watch(p.p.pid, "producer")
        start_workers(s, workers, mem)
    except BaseException:
        # A worker that did not start (e.g. a bad BOTJOBS_* setting) left the producer running for good.
        mem.stop()
        s.close()
        raise
    return s, token


def w3(b, rate, secs, conns, reps, workers=1):
    """A steady `rate` of schedule calls (due now) over `conns` connections for `secs` s; per job, the client's
    send time (CLOCK_REALTIME, this host) against the trigger's start as the worker recorded it
    (job_runs.started_at, same clock)."""
    mem = RssSampler()
    s, token = http_stack(b, workers, mem)
    results, pooled = [], []
    try:
        for _ in range(reps):
            reset(s)
            # Warm-up (not measured): the producer's first batches to new partitions, the worker's first runs.
            warm = loadgen(s, token, conns, rate, 2)["status"].get("202", 0)
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= warm, 60, interval=0.2,
                              what="the warm-up jobs to run")
            with tempfile.NamedTemporaryFile("r", suffix=".txt") as rec:
                lg = loadgen(s, token, conns, rate, secs, records=rec.name)
                sent = {}
                http_ms = []
                for line in rec:
                    t, lat, status, job = line.split()
                    if status == "202":
                        sent[job] = int(t)
                        http_ms.append(int(lat) / 1000)
            ids = list(sent)
            conftest.wait_for(lambda: s.sql("SELECT count(*) FROM job_runs WHERE job_id = ANY(%s::uuid[])",
                                            ids)[0][0] >= len(ids), secs + 120, interval=0.5,
                              what=f"{len(ids)} runs")
            # Where the time goes: the producer takes the call (jobs.accepted_at = due_at: before Kafka's ack)
            # -> stored by the worker's consumer (jobs.created_at: its transaction's start) -> trigger start.
            rows = s.sql("SELECT r.job_id::text, (extract(epoch FROM r.started_at) * 1000000)::bigint,"
                         " extract(epoch FROM r.started_at - r.due_at) * 1000,"
                         " extract(epoch FROM j.created_at - j.accepted_at) * 1000,"
                         " extract(epoch FROM r.started_at - j.created_at) * 1000"
                         " FROM job_runs r JOIN jobs j USING (job_id) WHERE r.job_id = ANY(%s::uuid[])", ids)
            e2e = [(started - sent[job]) / 1000 for job, started, *_ in rows]
            queued = [float(r[2]) for r in rows]
            stored = [float(r[3]) for r in rows]
            claimed = [float(r[4]) for r in rows]
            pooled += e2e
            results.append({"e2e_p50_ms": pct(e2e, 50), "e2e_p90_ms": pct(e2e, 90), "e2e_p99_ms": pct(e2e, 99),
                            "e2e_max_ms": max(e2e), "http_p50_ms": pct(http_ms, 50), "http_p99_ms": pct(http_ms, 99),
                            "http_max_ms": max(http_ms), "due_to_start_p50_ms": pct(queued, 50),
                            "due_to_start_p99_ms": pct(queued, 99), "accepted_to_stored_p50_ms": pct(stored, 50),
                            "accepted_to_stored_p99_ms": pct(stored, 99), "stored_to_start_p50_ms": pct(claimed, 50),
                            "stored_to_start_p99_ms": pct(claimed, 99),
                            "accepted": len(ids), "not_202": lg["answered"] - len(ids) + lg["io_errors"],
                            "sent_per_s": round(lg["started"] / secs, 1), "loadgen_cpu_s": lg["loadgen_cpu_s"]})
    finally:
        mems = [mem.stop()]
        stop_workers(s)
        s.close()
    out = {"rate": rate, "secs": secs, "conns": conns, "workers": workers}
    for k in results[0]:
        out[k] = summary([round(r[k], 3) for r in results])
    out["memory"] = memory_summary(mems)
    out["e2e"] = distribution(pooled)
    return out


# --- W4: ingest capacity -----------------------------------------------------------------------------------

W4_LADDER = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
W4_P99_MS = 50


def w4_step(b, s, token, conns, rate, secs):
    pcpu0, kcpu0 = tree_cpu(s.producer.p.pid), tree_cpu(b.kafka_pid())
    lg = loadgen(s, token, conns, rate, secs, drain=5)
    pcpu, kcpu = tree_cpu(s.producer.p.pid) - pcpu0, tree_cpu(b.kafka_pid()) - kcpu0
    bad = lg["answered"] - lg["status"].get("202", 0) + lg["io_errors"] + lg["unanswered"] + lg["connect_errors"]
    acc = lg["accepted_per_s"]
    ok = bad == 0 and lg["latency_ms"]["p99"] < W4_P99_MS and (rate == 0 or acc >= 0.97 * rate)
    k = 1000 / max(lg["status"].get("202", 0), 1)
    return {"rate": round(rate), "accepted_per_s": acc, "p50_ms": lg["latency_ms"]["p50"],
            "p99_ms": lg["latency_ms"]["p99"], "max_ms": lg["latency_ms"]["max"], "failed": bad,
            "max_queue": lg["max_queue"], "pass": ok, "producer_cpu_ms_per_1k": round(pcpu * 1000 * k, 1),
            "kafka_cpu_ms_per_1k": round(kcpu * 1000 * k, 1),
            "loadgen_cpu_ms_per_1k": round(lg["loadgen_cpu_s"] * 1000 * k, 1)}


def w4(b, conn_counts, step_s, reps):
    """For each connection count: the closed-loop maximum (every connection sends again as soon as it is
    answered), then open-loop steps at fractions of it; the capacity is the highest rate answered 202 with
    p99 < 50 ms (counted from when each request was due) and nothing else than 202."""
    mem = RssSampler()
    s, token = http_stack(b, 0, mem)
    per = {c: [] for c in conn_counts}
    try:
        # A fresh broker and producer are slow at first (the JVM compiles its hot paths, batches find their
        # size): warm both up before anything is measured.
        loadgen(s, token, 64, 0, max(2, step_s), drain=5)
        for _ in range(reps):
            for conns in conn_counts:
                loadgen(s, token, conns, 0, 1, drain=5)  # warm-up
                closed = w4_step(b, s, token, conns, 0, step_s)
                steps, fails = [], 0
                for f in W4_LADDER:
                    st = w4_step(b, s, token, conns, f * closed["accepted_per_s"], step_s)
                    steps.append(st)
                    fails = 0 if st["pass"] else fails + 1
                    if fails == 2:
                        break
                passed = [st for st in steps if st["pass"]]
                best = max(passed, key=lambda st: st["accepted_per_s"]) if passed else None
                per[conns].append({"capacity_per_s": best["accepted_per_s"] if best else 0,
                                   "p99_ms_at_capacity": best["p99_ms"] if best else None,
                                   "closed_loop": closed, "steps": steps})
    finally:
        mems = [mem.stop()]
        s.close()
    out = {"step_s": step_s, "p99_limit_ms": W4_P99_MS, "ladder": list(W4_LADDER), "conns": {}}
    for conns, runs in per.items():
        out["conns"][str(conns)] = {
            "capacity_per_s": summary([r["capacity_per_s"] for r in runs]),
            "p99_ms_at_capacity": summary([r["p99_ms_at_capacity"] for r in runs]),
            "closed_loop_per_s": summary([r["closed_loop"]["accepted_per_s"] for r in runs]),
            "closed_loop_p99_ms": summary([r["closed_loop"]["p99_ms"] for r in runs]),
            "producer_cpu_ms_per_1k": summary([r["closed_loop"]["producer_cpu_ms_per_1k"] for r in runs]),
            "kafka_cpu_ms_per_1k": summary([r["closed_loop"]["kafka_cpu_ms_per_1k"] for r in runs]),
            "loadgen_cpu_ms_per_1k": summary([r["closed_loop"]["loadgen_cpu_ms_per_1k"] for r in runs]),
            "runs": runs}
    out["memory"] = memory_summary(mems)
    return out


# --- W5: broadcast -----------------------------------------------------------------------------------------

def w5(b, leads, reps):
    """One broadcast (bench/bot: 'half') over `leads` leads whose condition holds for every other lead (the
    lead attribute 'half' is 1); the job is stored due now while the worker waits, with the NOTIFY a stored
    job sends. Total = the run's end (jobs.last_run_at) - its due time, both PostgreSQL clock."""
    s = b.stack(leads=0)
    s.sql("INSERT INTO leads (bot_id, id, attributes) SELECT %s, i, jsonb_build_object('half', i %% 2)"
          " FROM generate_series(1, %s) i", BOT, leads)
    s.sql("VACUUM ANALYZE leads")
    mem = RssSampler()
    results = []
    try:
        start_workers(s, 1, mem)
        for rep in range(reps):
            job = str(uuid.uuid4())
            with s.db_conn.transaction():
                s.sql("INSERT INTO jobs (job_id, bot_id, target_kind, target_code, due_at, params, accepted_at)"
                      " VALUES (%s, %s, 'broadcast', 'half', clock_timestamp(), jsonb_build_object('n', %s), now())",
                      job, BOT, rep + 1)
                s.sql("SELECT pg_notify('botjobs_jobs', 'c')")
            conftest.wait_for(lambda: s.sql("SELECT state FROM jobs WHERE job_id = %s", job)[0][0]
                              in ("done", "failed"), 3600, interval=0.2, what="the broadcast")
            state, total, done, matched, failed, secs = s.sql(
                "SELECT state, bcast_total, bcast_done, bcast_matched, bcast_failed,"
                " extract(epoch FROM last_run_at - due_at) FROM jobs WHERE job_id = %s", job)[0]
            assert state == "done" and failed == 0, f"broadcast {state}, {failed} lead(s) failed"
            set_ = s.sql("SELECT count(*) FROM leads WHERE bot_id = %s AND attributes->>'b' = %s", BOT,
                         str(rep + 1))[0][0]
            assert set_ == matched == leads // 2, f"{set_} leads changed, {matched} matched, want {leads // 2}"
            secs = float(secs)
            results.append({"leads_per_s": round(done / secs), "total_s": round(secs, 2), "matched": matched})
    finally:
        mems = [mem.stop()]
        stop_workers(s)
        s.close()
    return {"leads": leads, "leads_per_s": summary([r["leads_per_s"] for r in results]),
            "total_s": summary([r["total_s"] for r in results]), "matched": results[0]["matched"],
            "memory": memory_summary(mems)}


# --- W6: W2 with a backlog of future jobs ------------------------------------------------------------------

def claim_statement(s):
    """The worker's claim as it ran (pg_stat_statements): its text and cost per call."""
    rows = s.sql("SELECT query, calls, mean_exec_time, max_exec_time, stddev_exec_time, shared_blks_hit"
                 " + shared_blks_read FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                 " WHERE datname = current_database()) AND query ILIKE %s ORDER BY calls DESC LIMIT 1",
                 "%FOR UPDATE SKIP LOCKED%")
    if not rows:
        return None
    q, calls, mean, mx, sd, blks = rows[0]
    return {"query": q, "calls": calls, "mean_ms": round(mean, 3), "max_ms": round(mx, 3), "stddev_ms": round(sd, 3),
            "blocks_per_call": round(blks / max(calls, 1), 1)}


C_TOKEN = re.compile(r'"((?:\\.|[^"\\])*)"|(\w+)|(;)|(/\*.*?\*/|//[^\n]*|\s+)|(.)', re.S)


def c_string(path, name):
    """The value of `static const char name[] = "..." MACRO "...";` in a C file: its string literals and
    the string macros it uses, concatenated and unescaped (the SQL exactly as the binary sends it)."""
    src = path.read_text()
    macros = {m.group(1): m.group(2).replace("\\\n", " ")
              for m in re.finditer(r"^#define\s+(\w+)[ \t]+((?:[^\n]*\\\n)*[^\n]*)", src, re.M)}

    def expand(text, depth=0):
        out = []
        for lit, ident, semi, _, other in C_TOKEN.findall(text):
            if semi:
                break
            if lit or (not ident and not other):
                out.append(bytes(lit, "utf-8").decode("unicode_escape"))
            elif ident in macros and depth < 8:
                out.append(expand(macros[ident], depth + 1))
            elif ident or other:
                raise ValueError(f"{path.name}: {name}: cannot read past {ident or other!r}")
        return "".join(out)

    m = re.search(rf"\b{name}\[\]\s*=", src)
    if not m:
        raise ValueError(f"{path.name}: no {name}")
    return expand(src[m.end():])


def explain_claim(s, due=256, batch=256, times=6):
    """EXPLAIN ANALYZE of the worker's claim (worker/wk_store.c: CLAIM_SQL) of up to `batch` jobs when `due`
    jobs are due (for leads with nothing else pending), each time in a transaction that is rolled back (the
    jobs and the claim vanish): median execution and planning time of 5, and the first run's plan."""
    try:
        query = c_string(harness.ROOT / "worker" / "wk_store.c", "CLAIM_SQL")
    except (OSError, ValueError) as e:
        return {"error": f"the claim's SQL was not found in worker/wk_store.c ({e}): bench/workloads.py reads it"}
    execs, plans, text = [], [], None
    # Prepared inside each transaction: a rollback can take psycopg's and our prepared statements away.
    for _ in range(times):
        with s.db_conn.transaction(force_rollback=True):
            s.sql(f"PREPARE bench_claim AS {query}")
            try:
                s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
                      " SELECT gen_random_uuid(), %s, 2000000 + i, 'trigger', 'trivial',"
                      " now() - interval '1 second', '{}' FROM generate_series(1, %s) i", BOT, due)
                # worker, lease s, batch, lookahead ms (the worker's default); the job.started events are a
                # statement of their own since 2026-11-26 (wk_events.h)
                run = f"EXECUTE bench_claim('bench-explain', 30, {int(batch)}, 20)"
                if text is None:  # the first run warms the caches; its plan is the one shown
                    text = "\n".join(r[0] for r in s.sql(f"EXPLAIN (ANALYZE, BUFFERS) {run}"))
                    continue
                plan = s.sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {run}")[0][0][0]
                execs.append(plan["Execution Time"])
                plans.append(plan.get("Planning Time", 0))
            finally:
                s.sql("DEALLOCATE bench_claim")
    return {"due": due, "batch": batch, "exec_ms": round(statistics.median(execs), 3), "exec_ms_runs": [round(x, 3) for x in execs],
            "plan_ms": round(statistics.median(plans), 3), "plan": text}


def insert_backlog(s, n, leads):
    """n jobs due over the next 30 days (from 1 h out, so none runs during the benchmark), spread over
    `leads` leads of the bench bot, inserted straight into the worker's jobs table. The secondary indexes
    are dropped and rebuilt with their own definitions (one sort each instead of n random inserts): the
    table ends exactly as the migrations made it, then VACUUM ANALYZE (a backlog that built up over days
    has been vacuumed)."""
    t0 = time.monotonic()
    idx = s.sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs' AND indexname NOT IN"
                " (SELECT conname FROM pg_constraint WHERE conrelid = 'jobs'::regclass)")
    for name, _ in idx:
        s.sql(f'DROP INDEX "{name}"')
    # UUIDv7-like ids in creation order, as the producer makes them.
    s.sql("SET maintenance_work_mem = '256MB'")
    s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params, accepted_at)"
          " SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, %s, (i %% %s) + 1, 'trigger',"
          " 'trivial', now() + interval '1 hour' + (interval '30 days' - interval '1 hour') * (i::float8 / %s),"
          " jsonb_build_object('n', i), now() FROM generate_series(1, %s) i", BOT, leads, n, n)
    loaded = time.monotonic()
    for _, ddl in idx:
        s.sql(ddl)
    indexed = time.monotonic()
    s.sql("VACUUM ANALYZE jobs")
    s.sql("RESET maintenance_work_mem")
    size = s.sql("SELECT pg_total_relation_size('jobs')")[0][0]
    return {"jobs": n, "insert_s": round(loaded - t0, 1), "index_s": round(indexed - loaded, 1),
            "vacuum_analyze_s": round(time.monotonic() - indexed, 1), "table_mib": round(size / 2**20)}


def w6(b, backlog, n, spread, reps):
    """W2 without, then with `backlog` future jobs in the table: lateness, the claim's cost per call as the
    worker ran it (pg_stat_statements), and EXPLAIN ANALYZE of that claim."""
    b.preload_stat_statements()
    s = b.stack(leads=max(1000, n))
    s.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    mem = RssSampler()
    out = {"backlog": backlog, "jobs": n, "spread_sec": spread}
    try:
        start_workers(s, 1, mem)
        reset(s)
        s.sql("SELECT pg_stat_statements_reset()")
        late = w2_pass(b, s, n, spread)
        base = lateness_stats(late)
        claim0 = claim_statement(s)
        out["without"] = {**{k: round(v, 3) for k, v in base.items()}, "claim": claim0,
                          "explain": explain_claim(s), "explain_partial": explain_claim(s, due=10)}
        stop_workers(s)
        s.sql("DELETE FROM jobs")
        s.sql("TRUNCATE job_runs, outbox")
        out["load"] = insert_backlog(s, backlog, 1000000)
        start_workers(s, 1, mem)
        results, pooled = [], []
        s.sql("SELECT pg_stat_statements_reset()")
        for _ in range(reps):
            s.sql("DELETE FROM jobs WHERE due_at < now() + interval '30 minutes'")
            s.sql("TRUNCATE outbox")
            late = w2_pass(b, s, n, spread)
            pooled += late
            results.append(lateness_stats(late))
        claim1 = claim_statement(s)
        out.update(lateness_summary(results))
        out["claim"] = claim1
        out["explain"] = explain_claim(s)
        out["explain_partial"] = explain_claim(s, due=10)
        out["lateness"] = distribution(pooled)
    finally:
        mems = [mem.stop()]
        stop_workers(s)
        s.close()
    out["memory"] = memory_summary(mems)
    return out


# --- W7: the sandbox ---------------------------------------------------------------------------------------

W7_PARTS = ("in_process", "sandbox", "respawn", "fresh_child_per_run")


def w7(runs, respawns, reps):
    exe = harness.tool("bench_sandbox")
    results, mems = [], []
    for _ in range(reps):
        mem = RssSampler(every=0.2)
        p = subprocess.Popen([str(exe), "--runs", str(runs), "--respawns", str(respawns),
                              "--sandbox", str(harness.ROOT / "bin" / "botjobs-sandbox")],
                             stdout=subprocess.PIPE, text=True)
        mem.watch(p.pid, "bench_sandbox")
        out, _ = p.communicate()
        mems.append(mem.stop())
        assert p.returncode == 0, f"bench_sandbox exited {p.returncode}"
        results.append(json.loads(out))
    out = {"runs": runs, "respawns": respawns, "cpu": results[0]["cpu"]}
    for part in W7_PARTS:
        out[part] = {k: summary([r[part][k] for r in results]) for k in results[0][part]}
    out["memory"] = {k: v for k, v in memory_summary(mems).items() if k != "bench_sandbox_mib"}
    return out


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]
