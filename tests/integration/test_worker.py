"""
The worker's engine (issue 5) on real Kafka and PostgreSQL: punctuality, per-lead order across
workers, crash recovery, periodic jobs, conditions, tags, muted leads, a PostgreSQL restart.
Jobs are published straight to the jobs topic (the producer is not under test here), so each test
controls due times exactly.
"""
import datetime as dt
import json
import os
import re
import signal
import time
import uuid

import requests

from conftest import wait_for

UTC = dt.timezone.utc


def iso(t):
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def now():
    return dt.datetime.now(UTC)


def envelope(job_id=None, lead=1, due=None, **fields):
    e = {"v": 1, "type": "schedule", "job_id": job_id or str(uuid.uuid4()), "bot_id": 1, "lead_id": lead}
    if due is not None:
        e["due_at"] = iso(due)
    e.update(fields)
    return e


def publish(stack, envs):
    stack.produce_many("jobs", [(f"1:{e.get('lead_id', '-')}".encode(), json.dumps(e).encode()) for e in envs])


def add_trigger(stack, code, body, tid=None, condition=None):
    stack.sql("INSERT INTO triggers (bot_id, id, code, body, condition) VALUES (1, %s, %s, %s, %s)",
              tid or abs(hash(code)) % 100000 + 100, code, body, condition)


def add_leads(stack, ids):
    stack.sql("INSERT INTO leads (bot_id, id, name) SELECT 1, i, 'lead ' || i FROM unnest(%s::bigint[]) i"
              " ON CONFLICT DO NOTHING", list(ids))


def runs_of(stack, job_id):
    return stack.sql("SELECT outcome, due_at, started_at, finished_at, error FROM job_runs WHERE job_id = %s"
                     " ORDER BY id", job_id)


def test_a_job_starts_at_its_due_time_not_before_and_soon_after(stack):
    due = now() + dt.timedelta(seconds=2)
    envs = [envelope(lead=1 + i % 3, due=due + dt.timedelta(milliseconds=300 * i), trigger_code="demo_echo",
                     script_request_params={"text": str(i)}) for i in range(5)]
    publish(stack, envs)
    for e in envs:
        stack.wait_job(e["job_id"], timeout=15)
        (outcome, due_at, started, _, _), = runs_of(stack, e["job_id"])
        assert outcome == "done"
        assert started >= due_at, f"started {started} before due {due_at}"
        assert started - due_at < dt.timedelta(milliseconds=50), f"{(started - due_at).total_seconds() * 1000} ms late"


def test_a_job_claimed_ahead_of_its_due_time_still_starts_at_it(make_stack):
    # --lookahead-ms: the claim happens before the due time, the run does not; job.started says the run's start.
    s = make_stack(worker_args=["--lookahead-ms=800"])
    s.start_worker()
    due = now() + dt.timedelta(seconds=3)
    e = envelope(lead=3, due=due, trigger_code="demo_echo", script_request_params={"text": "ahead"})
    publish(s, [e])
    seen_early = []

    def claimed():
        rows = s.sql("SELECT state, clock_timestamp() < due_at FROM jobs WHERE job_id = %s", e["job_id"])
        if rows and rows[0][0] == "running" and rows[0][1]:
            seen_early.append(True)
        return rows and rows[0][0] in ("running", "done")
    wait_for(claimed, 20, interval=0.02, what="the claim")
    assert seen_early, "the job should be claimed (running) before its due time with an 800 ms lookahead"
    s.wait_job(e["job_id"], timeout=15)
    (outcome, due_at, started, _, _), = runs_of(s, e["job_id"])
    assert outcome == "done"
    assert started >= due_at, f"started {started} before due {due_at}"
    events = [json.loads(m.value()) for m in s.messages("events", min_count=3)]
    at = [x["at"] for x in events if x.get("job_id") == e["job_id"] and x["type"] == "job.started"]
    due_ms = due_at.replace(microsecond=due_at.microsecond // 1000 * 1000)  # events carry milliseconds
    assert len(at) == 1 and dt.datetime.fromisoformat(at[0].replace("Z", "+00:00")) >= due_ms, (at, due_at)


def test_a_completion_whose_idle_connection_was_cut_commits_on_a_new_one(make_stack):
    # The completer finds its connection broken only when it commits a batch: it must commit on a new
    # connection then, not leave the runs to their leases (60 s here).
    s = make_stack(worker_args=["--lease-sec=60"])
    s.start_worker()
    add_leads(s, [4, 5])
    first = envelope(lead=4, trigger_code="demo_echo", script_request_params={"text": "one"})
    publish(s, [first])
    s.wait_job(first["job_id"], timeout=20)
    cut = s.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'botjobs-worker:completer'")[0][0]
    assert cut == 1, f"expected one completer connection, cut {cut}"
    second = envelope(lead=5, trigger_code="demo_echo", script_request_params={"text": "two"})
    publish(s, [second])
    s.wait_job(second["job_id"], timeout=20)
    assert [r[0] for r in runs_of(s, second["job_id"])] == ["done"]


def test_two_workers_keep_each_leads_order_and_run_every_job_once(make_stack):
    s = make_stack()
    add_trigger(s, "append", "var seq = lead.getJsonAttr('seq') || [];\nseq.push(request.json.n);\n"
                             "lead.setJsonAttr('seq', seq);\nbot.sendText('n=' + request.json.n);")
    leads = range(101, 151)
    add_leads(s, leads)
    s.start_worker()
    s.start_worker()
    base = now() + dt.timedelta(seconds=3)
    envs = [envelope(lead=lead, due=base + dt.timedelta(microseconds=n * 1000 + lead), trigger_code="append",
                     script_request_params={"n": n}) for n in range(40) for lead in leads]
    publish(s, envs)
    wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= 2000, 180, interval=0.5, what="2000 runs")
    time.sleep(1)
    assert s.sql("SELECT count(*) FROM job_runs")[0][0] == 2000
    assert s.sql("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 2000
    assert s.sql("SELECT count(DISTINCT job_id) FROM job_runs WHERE outcome = 'done'")[0][0] == 2000
    for lead in leads:
        assert s.lead(lead)["attributes"]["seq"] == list(range(40)), f"lead {lead} out of order"
        runs = s.sql("SELECT started_at, finished_at FROM job_runs WHERE lead_id = %s ORDER BY started_at", lead)
        for a, b in zip(runs, runs[1:]):
            assert a[1] <= b[0], f"lead {lead}: two runs overlapped"
    workers = {w for (w,) in s.sql("SELECT DISTINCT worker FROM job_runs")}
    assert len(workers) == 2, f"both workers should have run jobs: {workers}"
    msgs = [json.loads(m.value()) for m in s.messages("outbound", min_count=2000, timeout=60)]
    assert len({m["message_id"] for m in msgs}) == 2000


def test_kill_9_a_worker_mid_run_every_job_completes_and_no_effect_twice(make_stack):
    s = make_stack(worker_args=["--lease-sec=3"])
    add_trigger(s, "count", "var c = lead.getIntAttr('count', 0) + 1;\nlead.setAttr('count', c);\n"
                            "bot.sendText('job ' + request.json.n);")
    leads = range(201, 261)
    add_leads(s, leads)
    w0 = s.start_worker()
    s.start_worker()
    base = now() + dt.timedelta(seconds=2)
    envs = [envelope(lead=lead, due=base + dt.timedelta(milliseconds=3 * (n * 60 + i)), trigger_code="count",
                     script_request_params={"n": n * 1000 + lead}) for n in range(10) for i, lead in enumerate(leads)]
    publish(s, envs)
    wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= 100, 60, interval=0.05, what="100 runs")
    os.kill(w0.p.pid, signal.SIGKILL)
    w0.p.wait()
    w0.killed = True
    wait_for(lambda: s.sql("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 600, 120, interval=0.5,
             what="all 600 jobs done after the kill")
    assert s.sql("SELECT count(*) FROM job_runs WHERE outcome = 'done'")[0][0] == 600, "each job's effects once"
    for lead in leads:
        assert s.lead(lead)["attributes"]["count"] == "10", f"lead {lead}: {s.lead(lead)['attributes']}"
    msgs = [json.loads(m.value()) for m in s.messages("outbound", min_count=600, timeout=60)]
    per_job = {}
    for m in msgs:
        per_job.setdefault(m["job_id"], set()).add(m["message_id"])
    assert len(per_job) == 600 and all(len(v) == 1 for v in per_job.values()), \
        "every job sent its message, from one run only (redeliveries keep the message_id)"


def test_periodic_runs_on_its_phase_and_stops_after_cancel(stack):
    first = now() + dt.timedelta(seconds=2)
    e = envelope(lead=2, due=first, trigger_code="demo_echo", is_periodic=True, repeat_interval_sec=10,
                 script_request_params={"text": "tick"})
    publish(stack, [e])
    wait_for(lambda: len(runs_of(stack, e["job_id"])) >= 3, 40, interval=0.2, what="three runs")
    publish(stack, [{"v": 1, "type": "cancel", "job_id": e["job_id"], "bot_id": 1, "lead_id": 2}])
    stack.wait_job(e["job_id"], states=("cancelled",), timeout=15)
    runs = runs_of(stack, e["job_id"])[:3]
    dues = [r[1] for r in runs]
    assert dues == [first.replace(microsecond=first.microsecond) + dt.timedelta(seconds=10 * k) for k in range(3)], dues
    for r in runs:
        assert r[0] == "done" and r[2] >= r[1] and r[2] - r[1] < dt.timedelta(seconds=1)
    n = len(runs_of(stack, e["job_id"]))
    time.sleep(11)
    assert len(runs_of(stack, e["job_id"])) == n, "a cancelled periodic job does not run again"


def test_periodic_after_downtime_runs_once_and_skips_ahead(stack):
    first = now() + dt.timedelta(seconds=1)
    e = envelope(lead=3, due=first, trigger_code="demo_echo", is_periodic=True, repeat_interval_sec=10,
                 script_request_params={"text": "tock"})
    publish(stack, [e])
    wait_for(lambda: len(runs_of(stack, e["job_id"])) == 1, 20, interval=0.1, what="the first run")
    stack.workers[0].stop()
    time.sleep(35)  # three due times pass while no worker runs
    stack.start_worker()
    wait_for(lambda: len(runs_of(stack, e["job_id"])) >= 2, 20, interval=0.1, what="the catch-up run")
    time.sleep(2)
    runs = runs_of(stack, e["job_id"])
    assert len(runs) == 2, f"missed runs are not replayed one by one: {len(runs)} runs"
    next_due = stack.job(e["job_id"])["due_at"]
    assert next_due > now(), "the next due time is in the future"
    assert ((next_due - first).total_seconds() % 10) < 0.001, "and keeps the phase"


def test_condition_tags_and_muted_leads(stack):
    add_trigger(stack, "tagcheck", "lead.setAttr('saw', [lead.isTagExist('a'), lead.isTagExist('c')].join(','));")
    stack.sql("UPDATE leads SET tags = '{a,b}' WHERE bot_id = 1 AND id = 2")
    stack.sql("UPDATE leads SET muted = true WHERE bot_id = 1 AND id = 3")
    skip = envelope(lead=1, trigger_code="demo_echo", condition_script_code="return lead.getAttr('lang') == 'xx';",
                    script_request_params={"text": "no"})
    go = envelope(lead=1, trigger_code="demo_echo", condition_script_code="return lead.getAttr('lang') == 'en';",
                  script_request_params={"text": "yes"})
    tags = envelope(lead=2, trigger_code="tagcheck", remove_tags="a", add_tags="c")
    muted = envelope(lead=3, trigger_code="demo_echo", script_request_params={"text": "muted"})
    publish(stack, [skip, go, tags, muted])
    assert stack.wait_job(skip["job_id"], states=("skipped",))["state"] == "skipped"
    stack.wait_job(go["job_id"])
    assert stack.lead(1)["attributes"]["echo"] == "yes"
    stack.wait_job(tags["job_id"])
    assert stack.lead(2)["attributes"]["saw"] == "false,true", "remove_tags then add_tags, before the code runs"
    assert stack.lead(2)["tags"] == ["b", "c"]
    j = stack.wait_job(muted["job_id"], states=("cancelled",))
    assert "muted" in j["last_error"]
    assert "echo" not in stack.lead(3)["attributes"]


def test_missing_target_fails_with_a_clear_reason(stack):
    e = envelope(lead=1, trigger_code="gone")
    publish(stack, [e])
    j = stack.wait_job(e["job_id"], states=("failed",))
    assert "trigger 'gone' does not exist in bot 1" in j["last_error"]


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_postgresql_restart_during_runs_loses_nothing(own_services, make_stack):
    pg, kafka = own_services()
    s = make_stack(services=(pg, kafka), worker_args=["--lease-sec=5"])
    add_trigger(s, "count", "lead.setAttr('count', lead.getIntAttr('count', 0) + 1);")
    leads = range(301, 331)
    add_leads(s, leads)
    s.start_worker()
    base = now() + dt.timedelta(seconds=2)
    envs = [envelope(lead=lead, due=base + dt.timedelta(milliseconds=20 * (n * 30 + i)), trigger_code="count")
            for n in range(10) for i, lead in enumerate(leads)]
    publish(s, envs)
    wait_for(lambda: s.sql("SELECT count(*) FROM job_runs")[0][0] >= 30, 30, interval=0.05, what="some runs")
    s.db_conn.close()
    pg.stop()
    time.sleep(0.5)
    cpu_before = cpu_seconds(s.workers[0].p.pid)
    time.sleep(3)
    # While the database is away the worker backs off; it does not spin on reconnects (the outbox relay
    # polled the socket of its refused reconnect, which is ready at once: 73 % of a core).
    idle_cpu = cpu_seconds(s.workers[0].p.pid) - cpu_before
    assert idle_cpu < 0.6, f"the worker used {idle_cpu:.2f} s of CPU in 3 s while PostgreSQL was down"
    pg.start()
    import psycopg
    s.db_conn = psycopg.connect(s.pg_uri, autocommit=True)
    wait_for(lambda: s.sql("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 300, 120, interval=0.5,
             what="all 300 jobs done after the restart")
    assert s.sql("SELECT count(*) FROM job_runs WHERE outcome = 'done'")[0][0] == 300
    for lead in leads:
        assert s.lead(lead)["attributes"]["count"] == "10", f"lead {lead}: {s.lead(lead)['attributes']}"
    assert s.workers[0].alive(), "the worker recovers by itself"


def test_broadcast_reaches_exactly_the_matching_leads_and_resumes_after_kill_9(make_stack):
    s = make_stack(worker_args=["--lease-sec=3", "--broadcast-chunk=50"])
    s.sql("INSERT INTO leads (bot_id, id, name, attributes, muted) SELECT 1, i, 'l' || i,"
          " jsonb_build_object('group', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END), i <= 1010"
          " FROM generate_series(1001, 2000) i")
    # A little work per lead so that the broadcast takes a few seconds and can be killed in the middle.
    s.sql("INSERT INTO broadcasts (bot_id, id, code, body, condition) VALUES (1, 1, 'promo',"
          " 'var x = 0; for (var i = 0; i < 30000; i++) x += i;\nlead.setAttr(''got'', ''yes'');\n"
          "bot.sendText(''promo for '' + lead.getData(''name''));', 'return lead.getAttr(''group'') == ''a'';')")
    w0 = s.start_worker()
    s.start_worker()
    job = {"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": 1, "broadcast_code": "promo"}
    s.produce("jobs", json.dumps(job).encode(), key=b"1:-")
    wait_for(lambda: (s.sql("SELECT bcast_done FROM jobs WHERE job_id = %s", job["job_id"]) or [[0]])[0][0] >= 200,
             60, interval=0.05, what="a fifth of the broadcast")
    owner = s.sql("SELECT lease_owner FROM jobs WHERE job_id = %s", job["job_id"])[0][0]
    victim = w0 if owner is None or owner.startswith("w0-") else s.workers[1]
    os.kill(victim.p.pid, signal.SIGKILL)
    victim.p.wait()
    victim.killed = True
    j = s.wait_job(job["job_id"], timeout=120)
    assert j["state"] == "done" and j["runs"] == 1
    total, done, matched, failed = s.sql("SELECT bcast_total, bcast_done, bcast_matched, bcast_failed FROM jobs"
                                         " WHERE job_id = %s", job["job_id"])[0]
    assert (total, done, matched, failed) == (993, 993, 495, 0), (total, done, matched, failed)
    got = {r[0] for r in s.sql("SELECT id FROM leads WHERE attributes->>'got' = 'yes'")}
    assert got == {i for i in range(1012, 2001, 2)}, "exactly the non-muted leads of group a"
    msgs = [json.loads(m.value()) for m in s.messages("outbound", min_count=495, timeout=60)]
    per_lead = {}
    for m in msgs:
        per_lead.setdefault(m["lead_id"], set()).add(m["message_id"])
    assert set(per_lead) == got and all(len(v) == 1 for v in per_lead.values()), "one message per lead"
    r = s.ctl("job", "show", job["job_id"], "--json")
    assert '"status": "done"' in r


def test_dialog_script_and_a_trigger_that_launches_one(stack):
    stack.sql("INSERT INTO scripts (bot_id, id, code, body) VALUES (1, 7, 'welcome', %s::jsonb)",
              json.dumps([{"type": "set_attr", "key": "step", "value": "1"},
                          {"type": "send_text", "text": "Welcome, {{ $lang }}"},
                          {"type": "add_tags", "tags": "welcomed"},
                          {"type": "run_script", "script_code": "second"}]))
    stack.sql("INSERT INTO scripts (bot_id, id, code, body) VALUES (1, 8, 'second', %s::jsonb)",
              json.dumps([{"type": "send_text", "text": "step two", "condition": "return lead.getAttr('step') == '1';"},
                          {"type": "set_attr", "key": "step", "value": "2"}]))
    stack.sql("INSERT INTO triggers (bot_id, id, code, body, script_id) VALUES (1, 9, 'hello', 'lead.setAttr(''t'', 1);', 7)")
    wait_for(lambda: stack.schedule({"script_code": "welcome", "lead_id": 2}).status_code == 202, 10,
             what="the scripts in the catalog")
    wait_for(lambda: stack.lead(2)["attributes"].get("step") == "2", 15, what="both scripts to run")
    assert "welcomed" in stack.lead(2)["tags"]
    texts = [json.loads(m.value())["text"] for m in stack.messages("outbound", min_count=2)]
    assert texts == ["Welcome, de", "step two"], texts
    assert stack.schedule({"trigger_code": "hello", "lead_id": 1}).status_code == 202
    wait_for(lambda: stack.lead(1)["attributes"].get("step") == "2", 15, what="the trigger's script to run")
    assert stack.lead(1)["attributes"]["t"] == "1"


def test_a_run_longer_than_its_lease_is_not_taken_over(make_stack):
    s = make_stack(worker_args=["--lease-sec=2", "--script-timeout-ms=20000"])
    add_trigger(s, "slow", "var until = Date.now() + 4500; while (Date.now() < until) {}\n"
                           "lead.setAttr('slow', lead.getIntAttr('slow', 0) + 1);")
    s.start_worker()
    s.start_worker()
    e = envelope(lead=1, trigger_code="slow")
    publish(s, [e])
    s.wait_job(e["job_id"], timeout=30)
    time.sleep(3)
    assert [r[0] for r in runs_of(s, e["job_id"])] == ["done"], "one run, not a second one on the other worker"
    assert s.lead(1)["attributes"]["slow"] == "1"
    assert not any("lease expired" in w.tail(300) for w in s.workers)


def test_housekeeping_deletes_only_old_finished_jobs_and_metrics_tell(make_stack):
    import requests
    s = make_stack(worker_args=["--retention-days=1", "--housekeeping-sec=1"])
    old = "now() - interval '2 days'"
    for state, period in (("done", None), ("failed", None), ("cancelled", None), ("skipped", None),
                          ("scheduled", None), ("scheduled", 3600)):
        s.sql(f"INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, state, period_sec,"
              f" updated_at) VALUES (gen_random_uuid(), 1, 1, 'trigger', 'demo_echo',"
              f" now() + interval '1 day', %s, %s, {old})", state, period)
    s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, state)"
          " VALUES (gen_random_uuid(), 1, 1, 'trigger', 'demo_echo', now(), 'done')")
    s.sql(f"INSERT INTO job_runs (job_id, bot_id, run_no, due_at, started_at, finished_at, outcome, worker)"
          f" VALUES (gen_random_uuid(), 1, 1, {old}, {old}, {old}, 'done', 'w')")
    w = s.start_worker()
    wait_for(lambda: s.sql("SELECT count(*) FROM jobs")[0][0] == 3, 30, interval=0.5, what="the old finished jobs gone")
    states = sorted(r[0] for r in s.sql("SELECT state FROM jobs"))
    assert states == ["done", "scheduled", "scheduled"], "recent and pending jobs stay"
    assert s.sql("SELECT count(*) FROM job_runs")[0][0] == 0
    m = requests.get(w.http + "/metrics", timeout=5).text
    for name in ("botjobs_worker_jobs_pruned_total 4", "botjobs_worker_outbox_backlog",
                 "botjobs_worker_consumer_lag", "botjobs_worker_jobs_claimed_total",
                 "botjobs_worker_lateness_seconds_bucket", 'botjobs_worker_runs_total{outcome="done"}'):
        assert name in m, name


def test_a_cancel_that_arrives_before_its_schedule_still_wins(stack):
    e = envelope(lead=1, due=now() + dt.timedelta(seconds=1), trigger_code="demo_echo",
                 script_request_params={"text": "never"})
    publish(stack, [{"v": 1, "type": "cancel", "job_id": e["job_id"], "bot_id": 1, "lead_id": 1}])
    wait_for(lambda: stack.job(e["job_id"]), 10, what="the tombstone")
    publish(stack, [e])
    time.sleep(3)
    assert stack.job(e["job_id"])["state"] == "cancelled"
    assert runs_of(stack, e["job_id"]) == []
    assert "echo" not in stack.lead(1)["attributes"]


CLAIM_CANDIDATES = (
    "SELECT j.job_id FROM jobs j WHERE j.state = 'scheduled' AND j.due_at <= statement_timestamp()"
    " AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.bot_id = j.bot_id AND p.lead_id = j.lead_id"
    "   AND p.state IN ('scheduled', 'running') AND (p.due_at, p.job_id) < (j.due_at, j.job_id) OFFSET 0)"
    " AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.bot_id = j.bot_id AND r.lead_id = j.lead_id"
    "   AND r.state IN ('scheduled', 'running') AND r.state <> 'scheduled' OFFSET 0)"
    " ORDER BY j.due_at, j.job_id LIMIT 256 FOR UPDATE SKIP LOCKED")
"""The candidate part of the worker's claim (wk_store.c: CLAIM_SQL with IS_LEAD_HEAD)."""

LEAD_PROBE = ("Index Cond: ((bot_id = j.bot_id) AND (lead_id = j.lead_id) AND (ROW(due_at, job_id) < "
              "ROW(j.due_at, j.job_id)))")


def test_the_claim_checks_each_leads_order_with_one_index_probe(stack):
    """A plan regression test: the claim's per-lead check must use jobs_lead_pending with the
    (due_at, job_id) comparison as an index condition (not a filter over the lead's pending jobs), and the
    due bound must be an index condition of jobs_due (a filter walked every future job's entry)."""
    stack.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at)"
              " SELECT gen_random_uuid(), 1, (i % 300) + 1, 'trigger', 'demo_echo', now() + interval '1 day'"
              " FROM generate_series(1, 3000) i")
    stack.sql("ANALYZE jobs")
    plan = "\n".join(r[0] for r in stack.sql("EXPLAIN " + CLAIM_CANDIDATES))
    assert "jobs_lead_pending" in plan, plan
    assert LEAD_PROBE in plan, plan
    assert "Index Cond: (due_at <= statement_timestamp())" in plan, plan


def test_the_claim_walks_due_jobs_in_the_order_its_lead_check_judges_them(stack):
    """1,000 leads with 10 jobs each, all due at one instant, and a lead in 20 running. Walking jobs_due in
    (due_at, job_id) order, the first job of a lead the walk meets is the lead's head, so a claim of 256
    passes over few others (ordered by due_at alone, ties came in heap order and a lead's head could be any
    of its 10: ~2,300 candidates rejected per claim). And "a job of the lead is running" is probed through
    the lead's index, not jobs_lease, whose statistics (ANALYZE saw none running) made it look free: each
    probe walked every running job (bench/profile.py)."""
    stack.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at)"
              " SELECT gen_random_uuid(), 1, (i % 1000) + 1, 'trigger', 'demo_echo', now() - interval '1 s'"
              " FROM generate_series(1, 10000) i")
    stack.sql("VACUUM ANALYZE jobs")
    stack.sql("UPDATE jobs SET state = 'running', lease_owner = 'w', lease_until = now() + interval '1 min'"
              " WHERE job_id IN (SELECT job_id FROM jobs WHERE lead_id <= 20 ORDER BY job_id LIMIT 2000)")
    plan = "\n".join(r[0] for r in stack.sql("EXPLAIN (ANALYZE, COSTS OFF) " + CLAIM_CANDIDATES))
    assert "jobs_lease" not in plan, plan
    rows = re.search(r"Index Scan using jobs_due on jobs j \(actual time=\S+ rows=(\d+)", plan)
    removed = re.search(r"Rows Removed by Filter: (\d+)", plan)
    assert rows and int(rows.group(1)) == 256, plan
    assert removed is None or int(removed.group(1)) < 256, plan


def test_the_claim_prepared_on_an_empty_table_is_planned_for_the_grown_table(stack):
    """The worker prepares its claim once per connection, often before any job is stored, and sets
    plan_cache_mode = force_custom_plan on that connection (wk_sched.c: listen_jobs): each execution must be
    planned for the table as it is then, an index probe by lead per candidate, not a plan kept from the
    empty table (a scan of every job per candidate)."""
    stack.sql("DELETE FROM jobs")
    stack.sql("VACUUM ANALYZE jobs")
    stack.sql("SET plan_cache_mode = force_custom_plan")
    stack.sql("PREPARE bench_claim(int) AS " + CLAIM_CANDIDATES.replace("LIMIT 256", "LIMIT $1"))
    try:
        stack.sql("EXPLAIN EXECUTE bench_claim(256)")  # planned while empty
        stack.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at)"
                  " SELECT gen_random_uuid(), 1, (i % 300) + 1, 'trigger', 'demo_echo', now() + interval '1 day'"
                  " FROM generate_series(1, 30000) i")  # no ANALYZE: autovacuum may not have run yet
        plan = "\n".join(r[0] for r in stack.sql("EXPLAIN EXECUTE bench_claim(256)"))
    finally:
        stack.sql("DEALLOCATE bench_claim")
        stack.sql("RESET plan_cache_mode")
    assert "Index Cond: ((bot_id = j.bot_id) AND (lead_id = j.lead_id)" in plan and "Seq Scan" not in plan, plan


def test_the_same_cancel_twice_in_one_batch_does_not_block_the_partition(make_stack):
    """A client that retries its DELETE, or a backlog after an outage, brings two cancels of one job
    into one consumer batch. ON CONFLICT DO UPDATE may touch a row once per statement: the batch used
    to fail on every retry, and every later job of the partition was never stored (chaos harness,
    worker-kill9). Also a cancel of the same job id for another bot must not shadow the real one."""
    s = make_stack()
    victim = envelope(lead=1, due=now() + dt.timedelta(seconds=30), trigger_code="demo_echo",
                      script_request_params={"text": "never"})
    cancel = {"v": 1, "type": "cancel", "job_id": victim["job_id"], "bot_id": 1, "lead_id": 1}
    foreign = dict(cancel, bot_id=2)
    after = envelope(lead=1, trigger_code="demo_echo", script_request_params={"text": "after"})
    tomb = str(uuid.uuid4())
    tombs = [{"v": 1, "type": "cancel", "job_id": tomb, "bot_id": 1, "lead_id": 1}] * 2
    s.sql("INSERT INTO bots (id, business_id, name) SELECT 2, business_id, 'other' FROM bots WHERE id = 1")
    # Published before any worker runs, so that the worker reads them in one batch.
    s.ctl("topics")
    publish(s, [victim, cancel, foreign, cancel, *tombs, after])
    s.start_worker()
    s.wait_job(after["job_id"], timeout=20)
    assert s.job(victim["job_id"])["state"] == "cancelled"
    assert s.job(tomb)["state"] == "cancelled"
    assert s.lead(1)["attributes"]["echo"] == "after"
    assert not any("cannot affect row a second time" in w.tail(300) for w in s.workers)


def test_a_job_stored_while_a_later_one_of_its_lead_runs_waits_for_that_run(make_stack):
    """A job can be stored with a due time earlier than a job of its lead that is already running (a
    run_at in the past, a late delivery). It is then the lead's head by due time, but it must not start
    before the running one commits: both would read the same lead snapshot and one run's attribute
    writes would be lost (chaos harness, scenario none: a lead's effect log lacked a run)."""
    s = make_stack(worker_args=["--script-timeout-ms=10000"])
    add_trigger(s, "slow_append", "var seq = lead.getJsonAttr('seq') || [];\n"
                                  "if (request.json.slow) { var until = Date.now() + 2500; while (Date.now() < until) {} }\n"
                                  "seq.push(request.json.n);\nlead.setJsonAttr('seq', seq);")
    s.start_worker()
    s.start_worker()  # one worker may wait for its batch; the other is free to claim b meanwhile
    a = envelope(lead=1, due=now() + dt.timedelta(seconds=1), trigger_code="slow_append",
                 script_request_params={"n": "a", "slow": True})
    publish(s, [a])
    wait_for(lambda: (s.job(a["job_id"]) or {}).get("state") == "running", 20, interval=0.02, what="a running")
    # Stored now, due before a: as the consumer stores a job whose message was produced (and its due
    # time fixed) just before a's due time, but that reached PostgreSQL just after a's claim.
    b = {"job_id": str(uuid.uuid4())}
    s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
          " SELECT %s, 1, 1, 'trigger', 'slow_append', due_at - interval '10 ms', '{\"n\": \"b\"}'"
          " FROM jobs WHERE job_id = %s", b["job_id"], a["job_id"])
    s.wait_job(b["job_id"], timeout=30)
    s.wait_job(a["job_id"], timeout=30)
    (_, _, _, a_finished, _), = runs_of(s, a["job_id"])
    (_, _, b_started, _, _), = runs_of(s, b["job_id"])
    assert b_started >= a_finished, f"b started {b_started} while a ran (until {a_finished})"
    assert s.lead(1)["attributes"]["seq"] == ["a", "b"], "both runs' writes, in commit order"


def test_two_workers_never_run_one_lead_at_once_even_when_a_claim_overlooks_a_new_job(make_stack):
    """The claim judges "is this the lead's head?" in its snapshot. If job b (due earlier) is stored
    while another worker's claim of job a is under way, that claim does not see b, the other worker
    claimed b meanwhile, and both ran at once: one run's writes were lost (chaos harness, scenario none:
    a claim 5 ms before the other run committed). A trigger stretches a's claim statement to 1.5 s to
    open that window every time. Claims are serialized (wk_store.c: CLAIM_LOCK): the other worker's claim
    waits for a's, then sees a running, so b (slow) runs after a, never beside it."""
    s = make_stack(worker_args=["--script-timeout-ms=10000"])
    add_trigger(s, "slow_append", "var seq = lead.getJsonAttr('seq') || [];\n"
                                  "if (request.json.slow) { var until = Date.now() + 2500; while (Date.now() < until) {} }\n"
                                  "seq.push(request.json.n);\nlead.setJsonAttr('seq', seq);")
    s.sql("CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$"
          " BEGIN PERFORM pg_sleep(1.5); RETURN NEW; END $$")
    s.sql("CREATE TRIGGER slow_claim BEFORE UPDATE ON jobs FOR EACH ROW WHEN"
          " (OLD.state = 'scheduled' AND NEW.state = 'running' AND NEW.params->>'n' = 'a') EXECUTE FUNCTION slow_claim()")
    s.start_worker()
    s.start_worker()
    due = now() + dt.timedelta(seconds=2)
    a = envelope(lead=1, due=due, trigger_code="slow_append", script_request_params={"n": "a"})
    publish(s, [a])
    wait_for(lambda: s.job(a["job_id"]), 20, interval=0.02, what="a stored")
    while now() < due + dt.timedelta(milliseconds=400):  # a's claim is asleep in its trigger now
        time.sleep(0.01)
    b = {"job_id": str(uuid.uuid4())}
    s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
          " VALUES (%s, 1, 1, 'trigger', 'slow_append', %s, '{\"n\": \"b\", \"slow\": true}')",
          b["job_id"], due - dt.timedelta(milliseconds=10))
    s.wait_job(b["job_id"], timeout=30)
    s.wait_job(a["job_id"], timeout=30)
    (_, _, _, a_finished, _), = runs_of(s, a["job_id"])
    (_, _, b_started, _, _), = runs_of(s, b["job_id"])
    assert b_started >= a_finished, f"b started {b_started} while a ran (until {a_finished})"
    assert s.lead(1)["attributes"]["seq"] == ["a", "b"], "both runs' writes, in commit order"


def test_a_worker_stopped_inside_its_claim_does_not_hold_the_other_workers_claims(make_stack):
    """Claims take turns (wk_store.c: CLAIM_LOCK). A worker stopped (SIGSTOP, a frozen VM) inside its claim
    transaction would hold every other worker's claims for as long as it stays stopped; PostgreSQL ends its
    session after CLAIM_IDLE_MAX (5 s) idle in that transaction, its claim rolls back, and the others go
    on: here job a, whose claim the stopped worker had made, and job b both run on the other worker, once
    each, while the first is still stopped."""
    s = make_stack()
    s.sql("CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$"
          " BEGIN PERFORM pg_sleep(1.5); RETURN NEW; END $$")
    s.sql("CREATE TRIGGER slow_claim BEFORE UPDATE ON jobs FOR EACH ROW WHEN"
          " (OLD.state = 'scheduled' AND NEW.state = 'running' AND NEW.params->>'n' = 'a') EXECUTE FUNCTION slow_claim()")
    first = s.start_worker()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
          " VALUES (%s, 1, 1, 'trigger', 'demo_echo', now(), '{\"n\": \"a\", \"text\": \"a\"}')", a)
    wait_for(lambda: s.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")[0][0] == 1, 10,
             interval=0.02, what="the first worker's claim of a, asleep in its trigger")
    first.p.send_signal(signal.SIGSTOP)
    try:
        s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, params)"
              " VALUES (%s, 1, 2, 'trigger', 'demo_echo', now(), '{\"text\": \"b\"}')", b)
        second = s.start_worker()
        s.wait_job(b, timeout=25)
        s.wait_job(a, timeout=25)
        assert first.p.poll() is None, "the first worker is still there, stopped"
        for job in (a, b):
            runs = s.sql("SELECT worker FROM job_runs WHERE job_id = %s", job)
            assert [r[0] for r in runs] == [second.name.replace("worker", "w") + "-" + s.tag], (job, runs)
    finally:
        first.p.send_signal(signal.SIGCONT)
    time.sleep(2)  # it finds its session gone, and must not run a again
    assert s.sql("SELECT count(*) FROM job_runs WHERE job_id = %s", a)[0][0] == 1


def test_an_outbox_backlog_of_big_batch_rows_is_relayed_whole_in_bounded_passes(stack):
    """After a Kafka outage at a high ingest rate the outbox holds many batch rows of up to 1,000 events
    each. A relay pass reads rows up to ~2 MiB of stored payload (wk_outbox.c: PASS_BYTES_MAX), not its
    1,000 rows at once (which could be hundreds of MB of text in one result), and over several passes
    every event goes out once, each row's in order."""
    stack.sql("INSERT INTO outbox (topic, key, payload)"
              " SELECT 'events', NULL, (SELECT jsonb_agg(jsonb_build_object('key', '1:' || r, 'payload',"
              "   jsonb_build_object('v', 1, 'type', 'test.backlog', 'row', r, 'i', i,"
              "                      'pad', md5((r * 1000 + i)::text) || md5(i::text))) ORDER BY i)"
              "   FROM generate_series(1, 1000) i)"
              " FROM generate_series(1, 80) r")
    size = stack.sql("SELECT sum(pg_column_size(payload)) FROM outbox WHERE key IS NULL"
                     " AND payload::jsonb @> '[{\"payload\": {\"type\": \"test.backlog\"}}]'")[0][0]
    assert size > 2 * 2097152, f"the rows ({size} bytes stored) must need more than one pass by size"
    wait_for(lambda: stack.sql("SELECT count(*) FROM outbox")[0][0] == 0, 60, interval=0.2,
             what="the outbox to be relayed")
    got = [json.loads(m.value()) for m in stack.messages("events", min_count=80000, timeout=90)]
    backlog = [(e["row"], e["i"]) for e in got if e.get("type") == "test.backlog"]
    assert len(backlog) == 80000 and len(set(backlog)) == 80000, len(backlog)
    for r in range(1, 81):
        assert [i for row, i in backlog if row == r] == list(range(1, 1001)), f"row {r} out of order"


def test_outbox_rows_written_before_009_are_relayed_and_the_worker_runs_on_either_schema(make_stack):
    """009 stores outbox.payload as json instead of jsonb. A worker may meet a database not migrated yet
    (it starts before the migrate job) and sees the migration happen under it: it runs, relays and measures
    the backlog on both schemas, and rows written as jsonb before the migration go out as they were."""
    s = make_stack()
    s.sql("ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
    s.sql("DELETE FROM schema_migrations WHERE name = '009_outbox_json.sql'")
    old_batch = [{"key": "1:7", "payload": {"v": 1, "type": "test.before", "n": 1}},
                 {"key": "1:8", "payload": {"v": 1, "type": "test.before", "n": 2, "s": "a \"b\" \u00e9"}}]
    s.sql("INSERT INTO outbox (topic, key, payload) VALUES ('events', NULL, %s::jsonb),"
          " ('outbound', '1:7', %s::jsonb)", json.dumps(old_batch), json.dumps({"v": 1, "type": "test.before.out"}))
    w = s.start_worker()
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    publish(s, [envelope(ids[0], lead=1, due=now(), trigger_code="demo_echo", script_request_params={"text": "a"})])
    s.wait_job(ids[0])
    time.sleep(1)
    s.ctl("migrate")  # under the running worker
    assert s.sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'outbox'"
                 " AND column_name = 'payload'") == [("json",)]
    publish(s, [envelope(ids[1], lead=1, due=now(), trigger_code="demo_echo", script_request_params={"text": "b"})])
    s.wait_job(ids[1])
    time.sleep(5.5)  # the backlog is measured every 5 s: at least once on each schema
    events = [json.loads(m.value()) for m in s.messages("events", min_count=8)]
    assert sorted((e["type"], e.get("n")) for e in events if e["type"] == "test.before") == \
        [("test.before", 1), ("test.before", 2)], events
    assert [e for e in events if e.get("n") == 2][0]["s"] == "a \"b\" \u00e9"
    for job_id in ids:
        assert sorted(e["type"] for e in events if e.get("job_id") == job_id) == \
            ["job.done", "job.scheduled", "job.started"], events
    out = [json.loads(m.value()) for m in s.messages("outbound", min_count=3)]
    assert [m for m in out if m.get("type") == "test.before.out"] == [{"v": 1, "type": "test.before.out"}], out
    assert s.sql("SELECT count(*) FROM outbox")[0][0] == 0
    metrics = requests.get(w.http + "/metrics", timeout=5).text
    assert re.search(r"^botjobs_worker_outbox_batches_parsed_total 0$", metrics, re.M), metrics
    assert "outbox:" not in w.tail(400).replace("outbox: this worker now relays the outbox", ""), w.tail(400)


def test_a_claim_of_many_bots_and_targets_runs_each_job_with_its_own(make_stack):
    """The state of a claim's jobs is read in one query, each bot and each target once, for the first job
    that names it, and shared with the other jobs' (wk_run.c: SNAPSHOT_SQL). Jobs of two bots whose
    triggers have the same codes, by code and by id, interleaved, one naming a missing trigger and one a
    missing bot, all claimed at once: each ran its own bot's trigger, and the two fail with their reasons."""
    s = make_stack()
    s.sql("INSERT INTO bots (id, business_id, name) SELECT 2, business_id, 'second' FROM bots WHERE id = 1")
    s.sql("INSERT INTO bot_attributes (bot_id, key, value) VALUES (1, 'who', '\"one\"'), (2, 'who', '\"two\"')")
    for bot in (1, 2):
        for tid, code in ((901, "ta"), (902, "tb")):
            s.sql("INSERT INTO triggers (bot_id, id, code, body) VALUES (%s, %s, %s, %s)", bot, tid, code,
                  f"return '{code}{bot}:' + bot.getAttr('who') + ':' + botId + ':' + leadId;")
        s.sql("INSERT INTO leads (bot_id, id, name) SELECT %s, i, 'lead ' || i FROM generate_series(1, 40) i"
              " ON CONFLICT DO NOTHING", bot)
    want, jobs = {}, []
    for n in range(40):
        bot, code = 1 + n % 2, ("ta", "tb")[(n // 2) % 2]
        job_id = str(uuid.uuid4())
        by_id = n % 3 == 0
        jobs.append((job_id, bot, n + 1, None if by_id else code, 901 if code == "ta" else 902 if by_id else None))
        want[job_id] = f"{code}{bot}:{('one', 'two')[bot - 1]}:{bot}:{n + 1}"
    missing_trigger, missing_bot = str(uuid.uuid4()), str(uuid.uuid4())
    jobs += [(missing_trigger, 1, 39, "nope", None), (missing_bot, 3, 1, "ta", None)]
    for job_id, bot, lead, code, tid in jobs:
        s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, target_id, due_at)"
              " VALUES (%s, %s, %s, 'trigger', %s, %s, now())", job_id, bot, lead, code, tid)
    s.start_worker()
    for job_id in want:
        s.wait_job(job_id)
    got = dict(s.sql("SELECT job_id::text, result #>> '{}' FROM jobs WHERE job_id = ANY(%s::uuid[])", list(want)))
    assert got == want
    assert s.wait_job(missing_trigger, states=("failed",))["last_error"] == "trigger 'nope' does not exist in bot 1"
    assert s.wait_job(missing_bot, states=("failed",))["last_error"] == "bot 3 does not exist"
