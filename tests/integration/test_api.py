"""
The producer's API beyond the schedule call (issue 4): job status, list, cancel, lead cancel,
idempotency, rate limiting, tenancy on every route, metrics and access logs, and what happens when
Kafka or PostgreSQL go away. Real Kafka and PostgreSQL throughout.
"""
import json
import socket
import time
import uuid

import requests

from conftest import wait_for

ECHO = {"trigger_code": "demo_echo", "lead_id": 1, "script_request_params": {"text": "x"}}


def later(sec=60, lead=1, **kw):
    return dict(ECHO, lead_id=lead, run_after_sec=sec, **kw)


def test_job_status_before_and_after_its_run(stack):
    job_id = stack.schedule(dict(ECHO, run_after_sec=1)).json()["job_id"]
    r = wait_for(lambda: (lambda x: x if x.status_code == 200 else None)(
        stack.api("GET", f"/api/v1/bots/1/jobs/{job_id}")), 10, what="the job to be stored")
    job = r.json()["job"]
    assert r.json()["success"] is True
    assert job["job_id"] == job_id and job["status"] == "scheduled" and job["runs"] == 0
    assert job["target"] == {"kind": "trigger", "id": None, "code": "demo_echo"}
    assert job["next_run_at"] == job["due_at"] and job["due_at"].endswith("Z")
    stack.wait_job(job_id)
    job = stack.api("GET", f"/bots/1/jobs/{job_id}").json()["job"]
    assert job["status"] == "done" and job["runs"] == 1 and job["last_run_at"] and job["next_run_at"] is None
    assert job["result"] == {"echoed": "x"} and job["last_error"] is None
    r = stack.api("GET", f"/api/v1/bots/1/jobs/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["success"] is False


def test_list_filters_and_pages(stack):
    ids = [stack.schedule(later(lead=2 if i % 2 else 3)).json()["job_id"] for i in range(7)]
    wait_for(lambda: stack.sql("SELECT count(*) FROM jobs")[0][0] == 7, 10, what="7 stored jobs")
    got, cursor = [], None
    while True:
        q = {"lead_id": 2, "limit": 2, **({"cursor": cursor} if cursor else {})}
        b = stack.api("GET", "/api/v1/bots/1/jobs", params=q).json()
        assert b["success"] is True and len(b["jobs"]) <= 2
        got += [j["job_id"] for j in b["jobs"]]
        cursor = b["next_cursor"]
        if not cursor:
            break
    assert got == sorted([i for n, i in enumerate(ids) if n % 2], reverse=True), "lead 2's jobs, newest first"
    assert len(stack.api("GET", "/api/v1/bots/1/jobs", params={"status": "scheduled"}).json()["jobs"]) == 7
    assert stack.api("GET", "/api/v1/bots/1/jobs", params={"status": "done"}).json()["jobs"] == []
    r = stack.api("GET", "/api/v1/bots/1/jobs", params={"lead_id": "x", "status": "asleep", "limit": 5000,
                                                       "cursor": "nope"})
    assert r.status_code == 422 and set(r.json()["errors"]) == {"lead_id", "status", "limit", "cursor"}


def test_cancel_before_due_means_it_never_runs(stack):
    job_id = stack.schedule(later(3)).json()["job_id"]
    wait_for(lambda: stack.job(job_id), 10, what="the job to be stored")
    r = stack.api("DELETE", f"/api/v1/bots/1/jobs/{job_id}")
    assert r.status_code == 202, r.text
    assert r.json() == {"success": True, "job_id": job_id, "status": "cancel_requested"}
    stack.wait_job(job_id, states=("cancelled",))
    time.sleep(4)  # past its due time
    assert stack.job(job_id)["state"] == "cancelled"
    assert stack.sql("SELECT count(*) FROM job_runs WHERE job_id = %s", job_id)[0][0] == 0
    assert stack.end_offsets("outbound") == 0
    events = [json.loads(m.value()) for m in stack.messages("events", min_count=2)]
    assert [e["type"] for e in events if e["job_id"] == job_id] == ["job.scheduled", "job.cancelled"]
    # A finished or cancelled job cannot be cancelled again; an unknown one is not found.
    r = stack.api("DELETE", f"/api/v1/bots/1/jobs/{job_id}")
    assert r.status_code == 409 and r.json()["errors"]["status"] == ["cancelled"]
    assert stack.api("DELETE", f"/api/v1/bots/1/jobs/{uuid.uuid4()}").status_code == 404


def test_cancel_a_leads_jobs(stack):
    mine = [stack.schedule(later(2, lead=2)).json()["job_id"] for _ in range(3)]
    other = stack.schedule(later(2, lead=3)).json()["job_id"]
    r = stack.api("DELETE", "/api/v1/bots/1/leads/2/jobs")
    assert r.status_code == 202 and r.json() == {"success": True, "bot_id": 1, "lead_id": 2,
                                                 "status": "cancel_requested"}
    after = stack.schedule(later(2, lead=2)).json()["job_id"]  # scheduled after the cancel: it runs
    for j in mine:
        stack.wait_job(j, states=("cancelled",))
    stack.wait_job(other)
    stack.wait_job(after)
    assert stack.api("DELETE", "/bots/1/leads/abc/jobs").status_code == 404


def test_idempotency_key(stack):
    key = {"Idempotency-Key": "order-" + uuid.uuid4().hex}
    a = stack.schedule(later(2), headers=key)
    b = stack.schedule(later(2), headers=key)
    assert a.status_code == b.status_code == 202 and a.json()["job_id"] == b.json()["job_id"]
    stack.wait_job(a.json()["job_id"])
    c = stack.schedule(later(2), headers=key)
    assert c.status_code == 202 and c.json()["job_id"] == a.json()["job_id"], "a late retry: same job"
    d = stack.schedule(later(30), headers=key)
    assert d.status_code == 422 and "Idempotency-Key" in d.json()["errors"]
    marker = stack.settle(later(3600))  # a later job of the same lead: everything before it was consumed
    assert stack.sql("SELECT count(*) FROM jobs WHERE job_id <> %s::uuid", marker)[0][0] == 1
    assert stack.sql("SELECT count(*) FROM job_runs")[0][0] == 1


def test_idempotency_conflict_is_found_in_the_database_too(make_stack):
    """Two producers: the second has never seen the key, but the stored job tells it the body differs."""
    s = make_stack()
    s.start_worker()
    s.start_producer()
    key = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
    job_id = s.schedule(later(1), headers=key).json()["job_id"]
    s.wait_job(job_id)
    s.start_producer()  # s.url now points at the new one
    r = s.schedule(later(99), headers=key)
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["errors"], r.text


def test_rate_limit(make_stack):
    s = make_stack(producer_args=["--rate-limit=2", "--rate-burst=3"])
    s.start_worker()
    s.start_producer()
    codes = [s.schedule(later()).status_code for _ in range(6)]
    assert codes[:3] == [202, 202, 202] and 429 in codes[3:], codes
    r = s.schedule(later())
    if r.status_code == 429:
        assert int(r.headers["Retry-After"]) >= 1 and r.json()["success"] is False
    time.sleep(1.6)
    assert s.schedule(later()).status_code == 202, "the bucket refills"
    other = s.ctl("token", "create", "Demo Inc", "second").strip()
    wait_for(lambda: s.schedule(later(), token=other).status_code == 202, 10, what="another token's own bucket")


def test_every_route_checks_tenancy(stack):
    stack.sql("INSERT INTO businesses (name) VALUES ('Rival')")
    stack.sql("INSERT INTO bots (id, business_id, name) SELECT 55, id, 'rival' FROM businesses WHERE name = 'Rival'")
    wait_for(lambda: stack.schedule(later(), bot=55).status_code == 403, 10, what="bot 55 in the catalog")
    jid = str(uuid.uuid4())
    for method, path in (("GET", f"/api/v1/bots/55/jobs/{jid}"), ("GET", "/api/v1/bots/55/jobs"),
                         ("DELETE", f"/api/v1/bots/55/jobs/{jid}"), ("DELETE", "/api/v1/bots/55/leads/1/jobs"),
                         ("GET", f"/bots/55/jobs/{jid}")):
        r = stack.api(method, path)
        assert r.status_code == 403, (method, path, r.status_code)
        assert stack.api(method, path, token=False).status_code == 401
    assert stack.api("PUT", "/api/v1/bots/1/jobs").status_code == 405
    assert stack.api("GET", "/api/v1/bots/1/jobs/not-a-uuid").status_code == 404


def test_metrics_and_access_log(stack):
    stack.schedule(later())
    stack.schedule({"trigger_code": 5})
    m = requests.get(stack.url + "/metrics", timeout=5).text
    assert 'botjobs_producer_http_requests_total{route="schedule",code="202"}' in m
    assert 'botjobs_producer_http_requests_total{route="schedule",code="422"}' in m
    assert 'botjobs_producer_rejected_total{reason="validation"}' in m
    assert 'botjobs_producer_kafka_delivery_seconds_count{result="ok"}' in m
    assert "botjobs_producer_requests_in_flight" in m
    log = stack.producer.tail(200)
    assert "request method=POST path=/api/v1/bots/1/jobs/schedule status=202" in log, log


def test_slow_and_oversized_clients_do_not_hold_the_server(make_stack):
    s = make_stack(producer_args=["--read-timeout-sec=2"])
    s.start_worker()
    s.start_producer()
    host, port = s.url.replace("http://", "").split(":")
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"POST /api/v1/bots/1/jobs/schedule HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + s.token.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
    # Meanwhile others are served.
    assert s.schedule(later()).status_code == 202
    for _ in range(3):
        time.sleep(1)
        try:
            slow.sendall(b" ")
        except OSError:
            break
    slow.settimeout(5)
    answer = b""
    try:
        answer = slow.recv(4096)
    except OSError:
        pass
    slow.close()
    assert answer == b"" or b" 408 " in answer.split(b"\r\n")[0], answer[:200]
    assert s.schedule(later()).status_code == 202


def test_kafka_down_503_and_nothing_appears_later_then_back_without_restart(own_services, make_stack):
    pg, kafka = own_services()
    s = make_stack(services=(pg, kafka), producer_args=["--kafka-timeout-ms=3000", "--retry-after-sec=2"])
    s.start_worker()
    s.start_producer()
    assert s.schedule(later(1, lead=1)).status_code == 202
    kafka.stop()
    t0 = time.monotonic()
    r = s.schedule(dict(ECHO, lead_id=2, script_request_params={"text": "lost?"}))
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and r.json()["success"] is False, r.text
    assert time.monotonic() - t0 < 10
    r2 = s.schedule(dict(ECHO, lead_id=2, script_request_params={"text": "lost?"}))
    assert r2.status_code == 503
    kafka.start()
    wait_for(lambda: s.schedule(later(1, lead=3)).status_code == 202, 60, interval=0.5,
             what="202 again once Kafka is back")
    wait_for(lambda: s.sql("SELECT count(*) FROM jobs WHERE lead_id = 3")[0][0] >= 1, 30, what="the new job stored")
    time.sleep(3)
    assert s.sql("SELECT count(*) FROM jobs WHERE lead_id = 2")[0][0] == 0, "a job answered 503 must never appear"
    assert "echo" not in s.lead(2)["attributes"]


def test_catalog_serves_from_cache_while_postgresql_is_down(own_services, make_stack):
    pg, kafka = own_services()
    s = make_stack(services=(pg, kafka))
    s.start_worker()
    s.start_producer()
    assert s.schedule(later()).status_code == 202
    s.db_conn.close()
    pg.stop()
    try:
        r = s.schedule(later(lead=3))
        assert r.status_code == 202, r.text  # tokens, bots and targets come from the cache
        assert s.schedule(later(), token="bj_" + "y" * 43).status_code == 401
        r = s.api("GET", f"/api/v1/bots/1/jobs/{r.json()['job_id']}")
        assert r.status_code == 503 and "database" in r.json()["message"]
    finally:
        pg.start()
        import psycopg
        s.db_conn = psycopg.connect(s.pg_uri, autocommit=True)
    wait_for(lambda: s.sql("SELECT count(*) FROM jobs")[0][0] == 2, 60, interval=0.5,
             what="the job accepted during the outage to be stored once PostgreSQL is back")


def test_the_openapi_documents_references_resolve_from_where_it_is_served(stack):
    doc = requests.get(stack.url + "/api/openapi.json", timeout=5).json()
    refs = set()

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("$ref"), str) and not x["$ref"].startswith("#"):
                refs.add(x["$ref"].split("#")[0])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)
    assert refs, "the document refers to the schema files"
    for ref in refs:
        r = requests.get(stack.url + "/api/" + ref, timeout=5)
        assert r.status_code == 200 and r.json().get("$schema"), ref
    assert requests.get(stack.url + "/api/../etc/passwd.schema.json", timeout=5).status_code == 404
