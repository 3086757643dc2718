#!/usr/bin/env python3
"""
chaos.py - the fault-injection harness (issue 8): runs botjobs under load while a nemesis kills,
stops, pauses and slows its parts, then checks that every accepted job ran once in effect.

    make chaos                              every scenario, CHAOS_DURATION (60 s) of load each
    make chaos-short                        the short version CI runs (10 s each, ~7 min)
    .local/venv/bin/python tests/chaos/chaos.py --duration 30 --scenarios worker-kill9,pg-kill9

One PostgreSQL and one Kafka broker serve the whole run; each scenario gets a fresh database and
topic prefix, a producer and two workers, its load (tests/chaos/harness.py: Load) and its faults
(Nemesis), then drains, cancels its periodic jobs, collects PostgreSQL and the topics into
history.json and hands it to the checker (checker.py). The table at the end has a row per scenario;
the run's directory (build/chaos/<time>/) keeps every log, history and report.md. Exit status 1 when
any scenario lost or duplicated something, broke a lead's order, or a process crashed.
"""
import argparse
import copy
import json
import pathlib
import random
import shutil
import sys
import tempfile
import time
import uuid

import requests
from confluent_kafka import Consumer, TopicPartition

import checker
import harness
from harness import log, now

# Scenarios: one fault kind each (so a loss points at its cause), a control run without faults, and a
# mixed one that draws from all of them (interactions: a worker killed while PostgreSQL recovers).
SCENARIOS = [
    ("none", []),
    ("worker-kill9", ["worker-kill9"]),
    ("worker-term", ["worker-term"]),
    ("worker-pause", ["worker-pause"]),
    ("producer-kill9", ["producer-kill9"]),
    ("producer-term", ["producer-term"]),
    ("kafka-kill9", ["kafka-kill9"]),
    ("kafka-term", ["kafka-term"]),
    ("pg-kill9", ["pg-kill9"]),
    ("pg-term", ["pg-term"]),
    ("pg-stall", ["pg-stall"]),
    ("pg-lock", ["pg-lock"]),
    ("mixed", list(harness.FAULTS)),
]


def read_topic(brokers, topic, timeout=60):
    """Every message of a topic, from the beginning to the high watermarks at call time."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "chaos-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out = []
    try:
        md = c.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions)
        high = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        todo = {p for p in parts if high[p] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                out.append((m.partition(), m.offset(), m.value()))
            for tp in c.position([TopicPartition(topic, p) for p in list(todo)]):
                if tp.offset >= high[tp.partition]:
                    todo.discard(tp.partition)
        if todo:
            raise RuntimeError(f"{topic}: could not read partitions {sorted(todo)} to their end")
    finally:
        c.close()
    return out


def wait_drained(dep, ledger, timeout):
    """Until every accepted job is stored, no one-shot job is pending and the outbox is empty."""
    ids = [a["job_id"] for a in ledger if a["status"] == 202]
    deadline = now() + timeout
    while True:
        try:
            missing = len(ids) - dep.sql("SELECT count(*) FROM jobs WHERE job_id = ANY(%s::uuid[])", ids)[0][0]
            pending = dep.sql("SELECT count(*) FROM jobs WHERE period_sec IS NULL"
                              " AND state IN ('scheduled', 'running')")[0][0]
            outbox = dep.sql("SELECT count(*) FROM outbox")[0][0]
        except Exception as e:  # the database may be coming back
            missing, pending, outbox = "?", "?", str(e)[:80]
        if missing == 0 and pending == 0 and outbox == 0:
            return True
        if now() > deadline:
            log(f"drain: gave up after {timeout} s: {missing} accepted job(s) not stored, {pending} pending,"
                f" outbox {outbox}")
            return False
        time.sleep(0.5)


def cancel_periodic(dep, timeout):
    """Cancels every periodic job through the API (DELETE); returns (sent, done, job ids whose cancel
    did not take effect in time)."""
    sent = now()
    deadline = now() + timeout
    left = []
    while now() < deadline:
        left = [r[0] for r in dep.sql("SELECT job_id::text FROM jobs WHERE period_sec IS NOT NULL"
                                      " AND state IN ('scheduled', 'running') AND NOT cancel_requested")]
        for job_id in left:
            try:
                dep.api("DELETE", f"/api/v1/bots/{harness.BOT}/jobs/{job_id}")
            except requests.RequestException:
                pass
        if not dep.sql("SELECT count(*) FROM jobs WHERE period_sec IS NOT NULL AND state IN ('scheduled', 'running')")[0][0]:
            return sent, now(), []
        time.sleep(0.5)
    return sent, now(), left


def collect(dep):
    f = float
    jobs = [dict(job_id=r[0], lead_id=r[1], kind=r[2], state=r[3], runs=r[4], period=r[5], due=f(r[6]),
                 created=f(r[7]), cid=r[8], last_error=r[9], bcast_total=r[10], bcast_done=r[11], attempts=r[12])
            for r in dep.sql("SELECT job_id::text, lead_id, target_kind, state, runs, period_sec,"
                             " extract(epoch FROM due_at), extract(epoch FROM created_at),"
                             " params->>'cid', last_error, bcast_total, bcast_done, attempts FROM jobs")]
    runs = [dict(job_id=r[0], lead_id=r[1], run_no=r[2], due=f(r[3]), started=f(r[4]), finished=f(r[5]),
                 outcome=r[6], error=r[7], worker=r[8], committed=f(r[9]) if r[9] is not None else None)
            for r in dep.sql("SELECT job_id::text, lead_id, run_no, extract(epoch FROM due_at),"
                             " extract(epoch FROM started_at), extract(epoch FROM finished_at), outcome, error,"
                             " worker, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM job_runs ORDER BY id")]
    ingest = {r[0]: f(r[1]) for r in dep.sql("SELECT job_id::text, extract(epoch FROM pg_xact_commit_timestamp(xmin))"
                                             " FROM chaos_ingest") if r[1] is not None}
    leads = {str(r[0]): r[1] for r in dep.sql("SELECT id, attributes FROM leads WHERE bot_id = %s", harness.BOT)}
    outbox_left = dep.sql("SELECT count(*) FROM outbox")[0][0]
    outbound, events, jobs_topic = [], [], []
    for p, o, v in read_topic(dep.kafka.brokers, dep.topic("outbound")):
        m = json.loads(v)
        outbound.append(dict(partition=p, offset=o, message_id=m["message_id"], job_id=m["job_id"], run=m["run"],
                             lead_id=m["lead_id"], text=m["text"]))
    for p, o, v in read_topic(dep.kafka.brokers, dep.topic("events")):
        e = json.loads(v)
        events.append(dict(type=e["type"], job_id=e.get("job_id"), run=e.get("run"), lead_id=e.get("lead_id"),
                           at=harness.epoch(e.get("at"))))
    for p, o, v in read_topic(dep.kafka.brokers, dep.topic("jobs")):
        try:
            e = json.loads(v)
        except ValueError:
            continue
        if e.get("type") == "schedule":
            jobs_topic.append(e.get("job_id"))
    return dict(jobs=jobs, runs=runs, ingest=ingest, leads=leads, outbox_left=outbox_left, outbound=outbound,
                events=events, jobs_topic=jobs_topic)


def run_scenario(services, name, faults, args, rundir, seed):
    d = rundir / name
    d.mkdir(parents=True)
    services.heal()
    log(f"=== {name}: {args.duration} s of load at {args.rate} req/s, faults: {', '.join(faults) or 'none'}")
    t_setup = now()
    dep = harness.Deployment(services, d, workers=args.workers, worker_args=args.worker_arg,
                             producer_args=args.producer_arg)
    h = {"scenario": name, "interval": harness.INTERVAL, "leads_expected": dep.leads}
    try:
        dep.start()
        load = harness.Load(dep, args.rate, args.duration, seed=seed)
        nem = harness.Nemesis(dep, services, faults, start=now() + 2, end=now() + args.duration - 2, seed=seed)
        h["t_start"] = now()
        load.start()
        if faults:
            nem.start()
        load.join()
        h["t_load_end"] = now()
        nem.stop()
        log(f"{name}: load done ({len(load.ledger)} requests), {len(nem.events)} fault(s); draining")
        wait_drained(dep, load.ledger, args.drain)
        h["t_cancel_sent"], h["t_cancel_done"], h["cancels_lost"] = cancel_periodic(dep, 60)
        wait_drained(dep, load.ledger, 30)
        time.sleep(1)
        h.update(collect(dep))
        h["ledger"] = load.ledger
        h["faults"] = nem.events
        h["nemesis_errors"] = nem.errors
    finally:
        dep.stop_all()
        h["crashes"], h["unclean"] = dep.crashes, dep.unclean
        h["sanitizer"] = dep.sanitizer_reports()
    h["elapsed"] = now() - t_setup
    with open(d / "history.json", "w") as f:
        json.dump(h, f, default=str)
    res = checker.check(h)
    res["elapsed"] = h["elapsed"]
    res["scenario"] = name
    res["fault_names"] = faults
    (d / "result.json").write_text(json.dumps(res, indent=1, default=str))
    log(f"{name}: {'ok' if res['ok'] else 'FAILED'}: accepted {res['accepted']}, lost {res['lost']},"
        f" duplicated {res['duplicated']}, order {res['order']} ({h['elapsed']:.0f} s)")
    for p in res["problems"][:20]:
        log("  " + p.replace("\n", "\n    "))
    return res, h


def self_check(h):
    """Doctors a real history in ways the checker must notice; returns the ones it missed."""
    missed = []

    def expect(what, doctor, category):
        d = copy.deepcopy(h)
        if doctor(d) is False:
            return  # nothing to doctor in this history
        r = checker.check(d)
        if not r.get(category):
            missed.append(what)

    one_shot = [a for a in h["ledger"] if a["status"] == 202 and a["kind"] in ("immediate", "delayed")]
    if not one_shot:
        return ["no accepted one-shot job to doctor"]
    a = one_shot[len(one_shot) // 2]
    lead = str(a["lead"])

    def lose_run(d):  # a run and all its effects vanish
        d["runs"] = [r for r in d["runs"] if r["job_id"] != a["job_id"]]
        attrs = d["leads"][lead]
        attrs.pop(f"n{a['cid']}", None)
        attrs["seq"] = [e for e in attrs["seq"] if not e.startswith(f"{a['cid']}:")]
        d["outbound"] = [m for m in d["outbound"] if m["job_id"] != a["job_id"]]

    def phantom_202(d):  # the ledger says 202 for a job nobody stored
        d["ledger"].append(dict(a, cid=10 ** 9, job_id=str(uuid.uuid4())))

    def second_effect(d):  # the counter applied twice
        d["leads"][lead][f"n{a['cid']}"] = "2"

    def second_message(d):  # the same run sent with a second message id
        m = next(m for m in d["outbound"] if m["job_id"] == a["job_id"])
        d["outbound"].append(dict(m, message_id=str(uuid.uuid4()), offset=m["offset"] + 10 ** 6))

    def second_run(d):
        r = next(r for r in d["runs"] if r["job_id"] == a["job_id"])
        d["runs"].append(dict(r, run_no=2, started=r["started"] + 100, finished=r["finished"] + 100))

    def swap_order(d):  # two effects of a lead in the wrong order
        seq = d["leads"][lead]["seq"]
        if len(seq) < 2:
            return False
        seq[0], seq[1] = seq[1], seq[0]

    def overlap(d):  # a run claimed before the lead's previous run committed
        rs = sorted((r for r in d["runs"] if r["lead_id"] == a["lead"] and r["outcome"] == "done"
                     and r.get("committed") is not None), key=lambda r: r["committed"])
        if len(rs) < 2:
            return False
        x, y = rs[-2], rs[-1]
        for e in d["events"]:
            if e["type"] == "job.started" and e["job_id"] == y["job_id"] and e.get("run") == y["run_no"]:
                e["at"] = x["committed"] - 0.05
        y["started"] = max(y["started"], x["committed"])

    def redelivery_only(d):  # a copy with the same id is allowed: must NOT fail
        m = next(m for m in d["outbound"] if m["job_id"] == a["job_id"])
        d["outbound"].append(dict(m, offset=m["offset"] + 10 ** 6))

    expect("a run lost with its effects", lose_run, "lost")
    expect("a 202 for a job never stored", phantom_202, "lost")
    expect("a counter applied twice", second_effect, "duplicated")
    expect("a second message id for one run", second_message, "duplicated")
    expect("a second run of a one-shot job", second_run, "duplicated")
    expect("a lead's effects swapped", swap_order, "order")
    expect("a run claimed while the lead's previous run ran", overlap, "order")
    d = copy.deepcopy(h)
    redelivery_only(d)
    r = checker.check(d)
    if r["duplicated"] or r["redelivered"] <= checker.check(h)["redelivered"]:
        missed.append("a redelivered copy (same message id) must count as redelivered, not duplicated")
    return missed


def fmt_s(x):
    return "-" if x is None else f"{x:.2f}"


def table(results):
    head = ("| fault | faults injected | requests | accepted | unacked, ran | jobs run | runs | lost | duplicated"
            " | redelivered msgs | order | max lateness s | p99 lateness s | recovery s | crashes | result |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        rows.append(f"| {r['scenario']} | {r['faults']} | {r['requests']} | {r['accepted']} | {r['unacked_ran']} |"
                    f" {r['jobs_run']} | {r['runs']} | {r['lost']} | {r['duplicated']} | {r['redelivered']} |"
                    f" {r['order']} | {fmt_s(r['max_lateness'])} | {fmt_s(r['p99_lateness'])} |"
                    f" {fmt_s(r['recovery'])} | {r['crashes'] + r['unclean_exits'] + r['sanitizer']} |"
                    f" {'ok' if r['ok'] else '**FAIL**'} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60, help="seconds of load (and faults) per scenario")
    ap.add_argument("--rate", type=float, default=25, help="schedule requests per second")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-arg", action="append", default=[], help="one more worker flag (repeatable)")
    ap.add_argument("--producer-arg", action="append", default=[], help="one more producer flag (repeatable)")
    ap.add_argument("--drain", type=float, default=120, help="most seconds to wait for the backlog after the load")
    ap.add_argument("--scenarios", default="all", help="comma-separated names (" +
                    ", ".join(n for n, _ in SCENARIOS) + ") or all")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock, printed)")
    ap.add_argument("--out", default=None, help="run directory (default build/chaos/<time>)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    wanted = [s for s in SCENARIOS if args.scenarios == "all" or s[0] in args.scenarios.split(",")]
    unknown = set(args.scenarios.split(",")) - {n for n, _ in SCENARIOS} - {"all"}
    if unknown or not wanted:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    rundir = pathlib.Path(args.out or harness.ROOT / "build" / "chaos" / time.strftime("%Y%m%d-%H%M%S"))
    rundir.mkdir(parents=True, exist_ok=True)
    log(f"chaos: seed {seed}, binaries {harness.it.BIN}, run directory {rundir}")
    t0 = now()
    data = pathlib.Path(tempfile.mkdtemp(prefix="botjobs-chaos-"))
    services = harness.Services(data)
    results, checked = [], False
    try:
        services.start()
        for i, (name, faults) in enumerate(wanted):
            res, h = run_scenario(services, name, faults, args, rundir, seed + i)
            if not checked:
                missed = self_check(h)
                checked = True
                res["self_check_missed"] = missed
                if missed:
                    res["ok"] = False
                    res["problems"].append("checker self-check missed: " + "; ".join(missed))
                    log("checker self-check FAILED: " + "; ".join(missed))
                else:
                    log("checker self-check: every doctored history was caught")
            results.append(res)
    finally:
        services.destroy()
        shutil.rmtree(data, ignore_errors=True)
    report = (f"chaos run {time.strftime('%Y-%m-%d %H:%M')}, seed {seed}, {args.duration:.0f} s of load per scenario"
              f" at {args.rate:g} req/s, {args.workers} workers, {now() - t0:.0f} s in all\n\n" + table(results) + "\n")
    (rundir / "report.md").write_text(report)
    (rundir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(report)
    bad = [r for r in results if not r["ok"]]
    for r in bad:
        print(f"{r['scenario']}: FAILED")
        for p in r["problems"][:30]:
            print("  " + p.replace("\n", "\n    "))
    return 1 if bad else 0


if __name__ == "__main__":
    random.seed()
    sys.exit(main())
