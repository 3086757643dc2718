"""
The thin path end to end (issue 3): HTTP -> producer -> Kafka -> worker -> PostgreSQL -> JavaScript ->
effects + outbox -> Kafka, on a real broker and a real database.
"""
import datetime as dt
import json
import time
import uuid

from conftest import wait_for


def parse_ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_schedule_runs_the_trigger_at_its_due_time_and_not_before(stack):
    text = "hello " + uuid.uuid4().hex[:6]
    r = stack.schedule({"trigger_code": "demo_echo", "lead_id": 1, "run_after_sec": 3,
                        "script_request_params": {"text": text}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["success"] is True and body["status"] == "scheduled" and body["bot_id"] == 1
    assert body["is_periodic"] is False
    job_id, due = body["job_id"], parse_ts(body["due_at"])
    uuid.UUID(job_id)

    # Stored by the worker, and nothing happened yet.
    wait_for(lambda: stack.job(job_id), 10, what="the job to be stored")
    assert dt.datetime.now(dt.timezone.utc) < due - dt.timedelta(milliseconds=500), "the test was too slow"
    assert stack.job(job_id)["state"] == "scheduled"
    assert "echo" not in stack.lead(1)["attributes"]
    assert stack.end_offsets("outbound") == 0

    job = stack.wait_job(job_id, timeout=15)
    lead = stack.lead(1)
    assert lead["attributes"]["echo"] == text
    assert job["result"] == {"echoed": text}
    started = stack.sql("SELECT started_at, finished_at, outcome, worker FROM job_runs WHERE job_id = %s", job_id)
    assert len(started) == 1 and started[0][2] == "done"
    assert started[0][0] >= due, f"started {started[0][0]} before due {due}"

    msgs = stack.messages("outbound", min_count=1)
    assert len(msgs) == 1, [m.value() for m in msgs]
    m = json.loads(msgs[0].value())
    assert m["type"] == "message" and m["text"] == "echo: " + text
    assert m["job_id"] == job_id and m["lead_id"] == 1 and m["bot_id"] == 1 and m["channel"] == "telegram"
    assert msgs[0].key() == b"1:1"
    assert parse_ts(m["created_at"]) >= due

    got = [(m.key(), json.loads(m.value())) for m in stack.messages("events", min_count=3)]
    mine = [(k, e) for k, e in got if e.get("job_id") == job_id]
    assert [e["type"] for _, e in mine] == ["job.scheduled", "job.started", "job.done"], mine
    assert all(k == b"1:1" for k, _ in mine), mine
    # The events of the claim and the completion (built by the worker, wk_events.c) say what job_runs says,
    # to the millisecond.
    ms = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    run_started, run_finished, _, worker = started[0]
    (_, st), (_, done) = mine[1], mine[2]
    assert st == {"v": 1, "type": "job.started", "job_id": job_id, "bot_id": 1, "lead_id": 1,
                  "due_at": ms(due), "run": 1, "worker": worker, "at": st["at"]}, st
    assert due <= parse_ts(st["at"]) <= run_started + dt.timedelta(milliseconds=1), st
    assert done == {"v": 1, "type": "job.done", "job_id": job_id, "bot_id": 1, "lead_id": 1, "run": 1,
                    "due_at": ms(due), "started_at": ms(run_started), "finished_at": ms(run_finished),
                    "state": "done", "at": done["at"]}, done
    assert parse_ts(done["at"]) >= run_finished - dt.timedelta(milliseconds=1), done


def test_the_same_message_twice_and_a_full_redelivery_make_one_job(stack):
    job_id = str(uuid.uuid4())
    env = json.dumps({"v": 1, "type": "schedule", "job_id": job_id, "bot_id": 1, "lead_id": 2,
                      "trigger_code": "demo_echo", "script_request_params": {"text": "once"}}).encode()
    stack.produce("jobs", env, key=b"1:2")
    stack.produce("jobs", env, key=b"1:2")
    stack.wait_job(job_id)
    wait_for(lambda: stack.committed_lag() == 0, 20, what="offsets to be committed")

    # Redeliver everything: restart the worker in a new consumer group, which reads the topic from its start.
    stack.workers[0].stop()
    assert stack.end_offsets("jobs") == 2
    fresh = "rewound-" + stack.group
    stack.start_worker("--group-id=" + fresh)
    wait_for(lambda: stack.committed_lag(fresh) == 0, 30, what="the redelivered messages to be consumed")
    assert "2 redelivered job(s) were already stored" in stack.workers[1].tail()

    assert stack.sql("SELECT count(*) FROM jobs WHERE job_id = %s", job_id)[0][0] == 1
    assert stack.sql("SELECT count(*) FROM job_runs WHERE job_id = %s", job_id)[0][0] == 1
    assert stack.lead(2)["attributes"]["echo"] == "once"
    out = [json.loads(m.value()) for m in stack.messages("outbound", min_count=1)]
    assert [m["text"] for m in out if m["job_id"] == job_id] == ["echo: once"]


def test_tokens(stack):
    ok = {"trigger_code": "demo_echo", "lead_id": 3, "run_after_sec": 60, "script_request_params": {"text": "t"}}
    r = stack.schedule(ok, token=False)
    assert r.status_code == 401 and r.json()["success"] is False and "Authorization" in r.json()["errors"]
    r = stack.schedule(ok, token="bj_" + "x" * 43)
    assert r.status_code == 401 and r.json()["message"]
    r = stack.schedule(ok, token=False, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401

    # The two Metabot spellings are accepted too.
    assert stack.schedule(ok, token=False, headers={"Authentication": stack.token}).status_code == 202
    assert stack.schedule(ok, token=False, headers={"Authentication": "Bearer " + stack.token}).status_code == 202
    assert stack.schedule(ok, path="/bots/1/jobs/schedule").status_code == 202

    # A revoked token stops working as soon as the producer hears of it (NOTIFY).
    second = stack.ctl("token", "create", "Demo Inc", "short-lived").strip()
    wait_for(lambda: stack.schedule(ok, token=second).status_code == 202, 10, what="the new token to apply")
    tid = [t["id"] for t in json.loads(stack.ctl("token", "list", "--json")) if t["name"] == "short-lived"][0]
    stack.ctl("token", "revoke", str(tid))
    wait_for(lambda: stack.schedule(ok, token=second).status_code == 401, 10, what="the revocation to apply")


def test_tenancy_and_unknown_bots(stack):
    ok = {"trigger_code": "demo_echo", "lead_id": 1, "run_after_sec": 60}
    stack.sql("INSERT INTO businesses (name) VALUES ('Other Co')")
    stack.sql("INSERT INTO bots (id, business_id, name) SELECT 77, id, 'theirs' FROM businesses WHERE name = 'Other Co'")
    wait_for(lambda: stack.schedule(ok, bot=77).status_code == 403, 10, what="bot 77 in the catalog")
    assert stack.schedule(ok, bot=999).status_code == 404
    r = stack.schedule({"trigger_code": "no_such_trigger", "lead_id": 1})
    assert r.status_code == 404 and "trigger_code" in r.json()["errors"]


def test_bad_requests_get_one_error_shape(stack):
    r = stack.schedule({"trigger_code": 5, "lead_id": -1, "run_at": "tomorrow", "is_periodic": True})
    assert r.status_code == 422
    b = r.json()
    assert b["success"] is False and b["message"]
    assert set(b["errors"]) == {"trigger_code", "lead_id", "run_at", "repeat_interval_sec"}, b
    assert "YYYY-MM-DD hh:mm:ss" in b["errors"]["run_at"][0]

    r = stack.schedule(None, raw='{"trigger_code": ')
    assert r.status_code == 400 and r.json()["success"] is False
    r = stack.schedule(None, raw='{"a":1}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = stack.schedule(None, raw='{"trigger_code":"demo_echo","x":"' + "a" * 300000 + '"}')
    assert r.status_code == 413
    r = stack.schedule({"trigger_code": "demo_echo", "lead_id": 1,
                        "condition_script_code": "var a = 1;\nreturn a +;"})
    assert r.status_code == 422 and "line 2" in r.json()["errors"]["condition_script_code"][0]
    assert stack.schedule(None, path="/api/v1/nothing").status_code == 404
    # The producer is still serving after all that.
    assert stack.schedule({"trigger_code": "demo_echo", "lead_id": 1, "run_after_sec": 30}).status_code == 202


def test_invalid_kafka_messages_go_to_the_dead_letter_topic_and_the_partition_moves_on(stack):
    # Invalid and valid messages in one batch: the valid one must not wait on the dead-letter delivery.
    good = str(uuid.uuid4())
    stack.produce_many("jobs", [
        (b"1:1", b"\x00\xffnot json at all"),
        (b"1:1", json.dumps({"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": 1,
                            "trigger_code": "demo_echo", "run_at": "yesterday"}).encode()),
        (b"4242:1", json.dumps({"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": 4242,
                               "lead_id": 1, "trigger_code": "demo_echo"}).encode()),
        (b"1:1", json.dumps({"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": 1,
                            "lead_id": "one", "trigger_id": [1]}).encode()),
        (b"1:1", json.dumps({"v": 1, "type": "schedule", "job_id": good, "bot_id": 1, "lead_id": 1,
                            "trigger_code": "demo_echo", "script_request_params": {"text": "after"}}).encode()),
    ])
    stack.wait_job(good, timeout=10)
    dead = [json.loads(m.value()) for m in stack.messages("deadletter", min_count=4)]
    assert len(dead) == 4, dead
    dead.sort(key=lambda d: (d["partition"], d["offset"]))
    reasons = " | ".join(d["reason"] for d in dead)
    assert "not JSON" in reasons and any(d.get("original_base64") for d in dead)
    assert "run_at" in reasons and any(json.loads(d.get("original") or "{}").get("run_at") == "yesterday" for d in dead)
    assert "bot 4242 does not exist" in reasons, reasons
    assert "lead_id: must be a positive integer" in reasons and "trigger_id" in reasons, reasons
    assert stack.sql("SELECT count(*) FROM jobs")[0][0] == 1, "only the valid message was stored"
    for d in dead:
        assert d["topic"] == stack.topic("jobs") and d["offset"] >= 0 and d["partition"] >= 0


def test_a_failing_script_records_the_error_and_line(stack):
    stack.sql("INSERT INTO triggers (bot_id, id, code, body) VALUES (1, 50, 'broken', 'var a = 1;\n\nnull.x = a;')")
    from conftest import wait_for as w
    w(lambda: stack.schedule({"trigger_code": "broken", "lead_id": 1}).status_code == 202, 10,
      what="the new trigger in the catalog")
    rows = w(lambda: stack.sql("SELECT outcome, error, error_line FROM job_runs r JOIN jobs j USING (job_id)"
                               " WHERE j.target_code = 'broken'"), 15, what="the failed run")
    outcome, error, line = rows[0]
    assert outcome == "failed" and line == 3 and "TypeError" in error and "line 3" in error, rows
    assert stack.end_offsets("outbound") == 0
