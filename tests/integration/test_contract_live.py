"""
The contract on a running deployment: what the producer answers and what it and the workers publish on
botjobs.jobs, botjobs.events, botjobs.outbound and botjobs.deadletter conform to the JSON Schemas in
schemas/ (test_contract.py checks the schemas themselves and the request rules without any server).
"""
import json
import re
import uuid

import pytest
import requests

from conftest import say, wait_for
from test_contract import c_verdict, validator

ANSWERS = "answers.schema.json#/$defs/"


def json_or_none(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


def check_answer(r, definition, status):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == "application/json", r.headers["Content-Type"]
    validator(ANSWERS + definition).validate(r.json())
    return r.json()


def test_schedule_answers_conform(stack):
    ok = {"trigger_code": "demo_echo", "lead_id": 1, "run_after_sec": 60, "script_request_params": {"text": "x"}}
    check_answer(stack.schedule(ok), "scheduled", 202)
    check_answer(stack.schedule(ok, path="/bots/1/jobs/schedule"), "scheduled", 202)
    periodic = dict(ok, is_periodic="1", repeat_interval_sec="3600", run_at="2026-01-21 09:00:00")
    assert check_answer(stack.schedule(periodic), "scheduled", 202)["is_periodic"] is True
    # The default --unknown-fields=warn accepts an unknown field and names it.
    a = check_answer(stack.schedule(dict(ok, trigger_cod="x")), "scheduled", 202)
    assert "trigger_cod" in a["warnings"], a
    check_answer(stack.schedule(ok, headers={"Idempotency-Key": "k-" + uuid.uuid4().hex}), "scheduled", 202)

    errors = [
        (stack.schedule(None, raw='{"trigger_code": '), 400),
        (stack.schedule(None, raw="[1]"), 400),
        (stack.schedule(ok, token=False), 401),
        (stack.schedule(ok, token="bj_" + "x" * 43), 401),
        (stack.schedule(ok, bot=999), 404),
        (stack.schedule({"trigger_code": "no_such_trigger", "lead_id": 1}), 404),
        (stack.schedule(ok, path="/api/v1/nothing"), 404),
        (stack.schedule(None, raw='{"trigger_code":"demo_echo","x":"' + "a" * 300000 + '"}'), 413),
        (stack.schedule(None, raw=json.dumps(ok), headers={"Content-Type": "text/plain"}), 415),
        (stack.schedule({"trigger_code": 5, "lead_id": -1, "run_at": "tomorrow", "is_periodic": True}), 422),
    ]
    for r, status in errors:
        check_answer(r, "error", status)
    # The 422 names exactly the fields the C names for the same body.
    body = {"script_code": "s", "run_at": "2026-02-30 00:00:00", "add_tags": ["a,b"]}
    a = check_answer(stack.schedule(body), "error", 422)
    assert set(a["errors"]) == set(c_verdict(json.dumps(body))["errors"]), a


def test_published_messages_conform(stack):
    stack.sql("INSERT INTO broadcasts (bot_id, id, code, body, condition) VALUES (1, 61, 'contract_promo',"
              " 'bot.sendText(''promo'');', 'return lead.getAttr(''lang'') == ''en'';')")
    wait_for(lambda: stack.schedule({"broadcast_code": "contract_promo", "run_after_sec": 3600}).status_code == 202,
             10, what="the broadcast in the catalog")
    jobs = {}
    for name, body in {
        "broadcast": {"broadcast_code": "contract_promo"},
        "done": {"trigger_code": "demo_echo", "lead_id": 1, "script_request_params": {"text": "hi"}},
        "skipped": {"trigger_code": "demo_echo", "lead_id": 2, "condition_script_code": "return false;"},
        "failed without a lead": {"trigger_code": "demo_echo", "script_request_params": {"text": "nobody"}},
        "tags only": {"lead_id": 3, "add_tags": "contract", "remove_tags": ["none"]},
    }.items():
        r = stack.schedule(body)
        assert r.status_code == 202, (name, r.text)
        jobs[name] = r.json()["job_id"]
    for name, job_id in jobs.items():
        stack.wait_job(job_id, states=("done", "failed", "skipped"))
    # Two messages the worker cannot accept: invalid JSON (and not UTF-8), and an invalid schedule.
    stack.produce_many("jobs", [
        (b"1:1", b"\x00\xffnot json"),
        (b"1:-", json.dumps({"v": 1, "type": "schedule", "job_id": str(uuid.uuid4()), "bot_id": 1,
                             "trigger_code": "demo_echo", "run_at": "yesterday"}).encode()),
    ])

    envelope = validator("job-envelope.schema.json")
    sent = set(jobs.values())
    ours = [json_or_none(m.value()) for m in stack.messages("jobs", min_count=len(jobs) + 2)]
    ours = [e for e in ours if isinstance(e, dict) and e.get("job_id") in sent]
    assert len(ours) == len(jobs), ours
    for e in ours:
        envelope.validate(e)
        assert c_verdict(json.dumps(e), "envelope")["valid"], e

    events = [json.loads(m.value()) for m in stack.messages("events", min_count=3 * len(jobs))]
    ev = validator("job-event.schema.json")
    for e in events:
        ev.validate(e)
    types = {e["type"] for e in events}
    assert {"job.scheduled", "job.started", "job.done", "job.failed", "job.skipped"} <= types, types
    assert any(e.get("progress") and e["job_id"] == jobs["broadcast"] for e in events), "the broadcast's job.done"
    # Every batch row of events came through the batch reader (wk_batch.h), none the slow way.
    ms = [requests.get(w.http + "/metrics", timeout=5).text for w in stack.workers]
    assert any(re.search(r"^botjobs_worker_outbox_relayed_total [1-9]", m, re.M) for m in ms), ms
    assert all(re.search(r"^botjobs_worker_outbox_batches_parsed_total 0$", m, re.M) for m in ms), ms

    # The broadcast's status shows its progress.
    r = stack.api("GET", f"/api/v1/bots/1/jobs/{jobs['broadcast']}")
    if not (r.status_code == 404 and "no such route" in r.text):
        job = check_answer(r, "job_answer", 200)["job"]
        assert job["progress"] and job["progress"]["done"] >= 1, job
        assert job["target"] == {"kind": "broadcast", "id": None, "code": "contract_promo"}, job

    outbound = [json.loads(m.value()) for m in stack.messages("outbound", min_count=1)]
    assert outbound, "the demo trigger sends a message"
    out = validator("outbound-message.schema.json")
    for m in outbound:
        out.validate(m)

    dead = [json.loads(m.value()) for m in stack.messages("deadletter", min_count=2)]
    assert len(dead) == 2, dead
    dl = validator("deadletter.schema.json")
    for d in dead:
        dl.validate(d)
    assert {"original", "original_base64"} == {k for d in dead for k in d if k.startswith("original")}
    say(f"contract live: {len(ours)} envelopes, {len(events)} events ({', '.join(sorted(types))}), "
        f"{len(outbound)} outbound, {len(dead)} dead letters conform")


def test_read_and_cancel_answers_conform(stack):
    """GET/DELETE routes; until they are in this tree, an expected failure."""
    r = stack.schedule({"trigger_code": "demo_echo", "lead_id": 1, "script_request_params": {"text": "a"}})
    done = r.json()["job_id"]
    stack.wait_job(done)
    h = {"Authorization": "Bearer " + stack.token}
    r = requests.get(f"{stack.url}/api/v1/bots/1/jobs/{done}", headers=h, timeout=10)
    if r.status_code == 404 and "no such route" in r.text:
        pytest.xfail("the read and cancel routes are not in this tree yet")
    job = check_answer(r, "job_answer", 200)["job"]
    assert job["job_id"] == done and job["status"] == "done" and job["runs"] == 1, job
    check_answer(requests.get(f"{stack.url}/bots/1/jobs/{done}", headers=h, timeout=10), "job_answer", 200)
    check_answer(requests.get(f"{stack.url}/api/v1/bots/1/jobs/{uuid.uuid4()}", headers=h, timeout=10), "error", 404)

    later = stack.schedule({"trigger_code": "demo_echo", "lead_id": 2, "run_after_sec": 300}).json()["job_id"]
    wait_for(lambda: requests.get(f"{stack.url}/api/v1/bots/1/jobs/{later}", headers=h, timeout=10).status_code == 200,
             10, what="the job to be stored")
    page = check_answer(requests.get(f"{stack.url}/api/v1/bots/1/jobs", params={"limit": 1}, headers=h, timeout=10),
                        "job_list", 200)
    assert len(page["jobs"]) == 1 and page["next_cursor"], page
    page = check_answer(requests.get(f"{stack.url}/api/v1/bots/1/jobs", headers=h, timeout=10,
                                     params={"lead_id": 1, "status": "done", "cursor": page["next_cursor"]}),
                        "job_list", 200)
    check_answer(requests.get(f"{stack.url}/api/v1/bots/1/jobs", params={"limit": 0}, headers=h, timeout=10),
                 "error", 422)

    a = check_answer(requests.delete(f"{stack.url}/api/v1/bots/1/jobs/{later}", headers=h, timeout=10), "cancel_job", 202)
    assert a["job_id"] == later, a
    check_answer(requests.delete(f"{stack.url}/api/v1/bots/1/jobs/{done}", headers=h, timeout=10), "error", 409)
    a = check_answer(requests.delete(f"{stack.url}/api/v1/bots/1/leads/2/jobs", headers=h, timeout=10), "cancel_lead", 202)
    assert a["lead_id"] == 2 and a["bot_id"] == 1, a
    check_answer(requests.delete(f"{stack.url}/bots/1/leads/2/jobs", headers=h, timeout=10), "cancel_lead", 202)
    # What the cancels put on botjobs.jobs conforms too.
    env = validator("job-envelope.schema.json")
    cancels = [json.loads(m.value()) for m in stack.messages("jobs", min_count=5)]
    cancels = [e for e in cancels if e.get("type") in ("cancel", "cancel_lead")]
    assert {e["type"] for e in cancels} == {"cancel", "cancel_lead"}, cancels
    for e in cancels:
        env.validate(e)
        assert c_verdict(json.dumps(e), "envelope")["valid"], e
