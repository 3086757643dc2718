"""
Boundary tests (issue 8, part 3): hostile HTTP clients against the real producer (and worker) on real
Kafka and PostgreSQL. Every refusal is a 4xx in the API's one error shape
({"success":false,"message":"…","errors":{field:[rule]}}) whose bytes are valid UTF-8 JSON, and the
server keeps serving other clients while it is under attack.

Already covered elsewhere, not repeated here: a body over 256 KiB with a Content-Length and a body
trickled slowly (test_api.py), a revoked token on the schedule route (test_thin_path.py), an
Idempotency-Key replayed with another body on one producer and across two (test_api.py), tenancy with
the other business's token on the /api/v1 routes (test_api.py).
"""
import json
import socket
import threading
import time
import uuid

import requests

from conftest import wait_for

ECHO = {"trigger_code": "demo_echo", "lead_id": 1, "script_request_params": {"text": "x"}}
SQL = "x'); DROP TABLE jobs; --"
PREFIXES = ("/api/v1", "")
I64_MAX = 2**63 - 1


def later(sec=3600, lead=1, **kw):
    return dict(ECHO, lead_id=lead, run_after_sec=sec, **kw)


def refused(r, status, field=None):
    """r is a refusal with this status in the one error shape; field, when given, is named in errors."""
    what = f"{r.request.method} {r.request.url} -> {r.status_code}: {r.content[:300]!r}"
    assert r.status_code == status, what
    b = json.loads(r.content.decode("utf-8"))  # strict: the answer is UTF-8 whatever the client sent
    assert b["success"] is False and isinstance(b["message"], str) and b["message"], what
    errors = b["errors"]
    assert isinstance(errors, dict) and errors, what
    for k, rules in errors.items():
        assert isinstance(rules, list) and rules and all(isinstance(x, str) and x for x in rules), what
    if field is not None:
        assert field in errors, what
    return b


def host_port(stack):
    host, port = stack.url.replace("http://", "").split(":")
    return host, int(port)


def closed_by_peer(sock):
    """True when the other end closed this socket (a read would return end of file at once)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
        sock.settimeout(10)


def raw_request(stack, data, timeout=10):
    """Sends bytes on a fresh connection; returns (status, body) of the answer, (None, b"") if closed."""
    s = socket.create_connection(host_port(stack), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
    finally:
        s.close()
    if not buf:
        return None, b""
    head, _, body = buf.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


# --- size --------------------------------------------------------------------------------------------------


def test_oversized_headers_are_refused_and_others_still_served(stack):
    # One header larger than the connection's memory (64 KiB): libmicrohttpd refuses it itself.
    status, _ = raw_request(stack, b"POST /api/v1/bots/1/jobs/schedule HTTP/1.1\r\nHost: x\r\nX-Big: "
                            + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
    assert status is None or 400 <= status < 500, status
    # Many headers, together too large.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(2000))
    status, _ = raw_request(stack, b"GET /api/v1/bots/1/jobs HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status is None or 400 <= status < 500, status
    # A large token that fits: an ordinary 401.
    refused(stack.schedule(later(), token="bj_" + "z" * 20_000), 401)
    # An oversized Idempotency-Key: named.
    refused(stack.schedule(later(), headers={"Idempotency-Key": "k" * 5000}), 422, "Idempotency-Key")
    assert stack.schedule(later()).status_code == 202


def test_oversized_chunked_body_without_a_length(stack):
    def chunks():
        yield b'{"trigger_code":"demo_echo","lead_id":1,"script_request_params":{"x":"'
        for _ in range(40):
            yield b"a" * 10_000
        yield b'"}}'
    h = {"Authorization": "Bearer " + stack.token, "Content-Type": "application/json"}
    try:
        r = requests.post(stack.url + "/api/v1/bots/1/jobs/schedule", data=chunks(), headers=h, timeout=30)
    except requests.ConnectionError:
        r = None  # answered and closed while we were still sending: also a refusal
    if r is not None:
        refused(r, 413, "body")
    # A body inside the limit but with params over theirs (64 KiB).
    refused(stack.schedule(later(script_request_params={"x": "a" * 70_000})), 422, "script_request_params")
    refused(stack.schedule(later(condition_script_code="return true;" + " " * 70_000)), 422,
            "condition_script_code")
    assert stack.schedule(later()).status_code == 202


# --- slow clients --------------------------------------------------------------------------------------


def test_slowloris_headers_are_cut_off_while_others_are_served(make_stack):
    """Clients that send their request line and headers a byte at a time, forever (each byte resets an
    idle timeout): the producer closes them within a bounded time and serves others meanwhile."""
    s = make_stack(producer_args=["--read-timeout-sec=2"])
    s.start_worker()
    s.start_producer()
    attack = b"POST /api/v1/bots/1/jobs/schedule HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 10_000
    socks = [socket.create_connection(host_port(s)) for _ in range(8)]
    closed_after = {}
    stop = threading.Event()

    def dribble(i, sock):
        t0 = time.monotonic()
        for b in attack:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([b]))
            except OSError:
                closed_after[i] = time.monotonic() - t0
                return
            time.sleep(0.25)

    threads = [threading.Thread(target=dribble, args=(i, x), daemon=True) for i, x in enumerate(socks)]
    for t in threads:
        t.start()
    try:
        # While the attack goes on, other clients get their answers, promptly.
        for _ in range(5):
            t0 = time.monotonic()
            assert s.schedule(later()).status_code == 202
            assert s.api("GET", "/api/v1/bots/1/jobs?limit=1").status_code == 200
            assert time.monotonic() - t0 < 2.0, "served, but slowly"
            time.sleep(0.5)
        # The server cut every slow client off: a write fails (reset) or a read sees the end.
        wait_for(lambda: len(closed_after) == len(socks), 15, what="the slow clients to be closed")
    finally:
        stop.set()
        for x in socks:
            x.close()
    assert max(closed_after.values()) < 10, closed_after
    assert s.schedule(later()).status_code == 202


# --- encodings and shapes ------------------------------------------------------------------------------


def test_invalid_utf8_everywhere(stack):
    # In the body: jansson refuses it; the answer is UTF-8 all the same.
    refused(stack.schedule(None, raw=b'{"trigger_code":"demo\xff\xfeecho","lead_id":1}'), 400, "body")
    refused(stack.schedule(None, raw=b'{"trigger_code":"\xc0\xaf","lead_id":1}'), 400, "body")
    refused(stack.schedule(None, raw=b'{"trigger_code":"\xed\xa0\x80","lead_id":1}'), 400, "body")  # surrogate
    refused(stack.schedule(None, raw=b'{"trigger_code":"demo_echo","lead_id":1,"add_tags":"\xe2\x82"}'), 400, "body")
    # In the path (%-decoded by the server): a 404 that quotes it.
    b = refused(stack.api("GET", "/api/v1/bots/1/jobs/%C1%FF"), 404)
    assert "\ufffd" in b["message"] or "/jobs/" in b["message"], b
    refused(stack.api("POST", "/api/v1/bots/1/%E2%82/schedule"), 404)
    # In the query: named.
    refused(stack.api("GET", "/api/v1/bots/1/jobs?status=%FF%FE"), 422, "status")
    refused(stack.api("GET", "/api/v1/bots/1/jobs?cursor=%C0%AF"), 422, "cursor")
    # In headers: the token (no such token) and the Idempotency-Key.
    refused(stack.schedule(later(), token=False, headers={"Authorization": b"Bearer \xff\xfe"}), 401)
    r = stack.schedule(later(), headers={"Idempotency-Key": b"k-\xff\xfe-" + uuid.uuid4().hex.encode()})
    assert r.status_code in (202, 422), r.text
    if r.status_code == 422:
        refused(r, 422, "Idempotency-Key")
    assert stack.schedule(later()).status_code == 202
    assert stack.producer.alive() and all(w.alive() for w in stack.workers)


def test_deeply_nested_json(stack):
    refused(stack.schedule(None, raw="[" * 100_000 + "]" * 100_000), 400, "body")
    refused(stack.schedule(None, raw='{"a":' * 30_000 + "1" + "}" * 30_000), 400, "body")
    # Nested params inside jansson's depth limit: accepted or refused clearly, and the worker survives
    # turning them into JavaScript values.
    deep = {"text": "x"}
    for _ in range(500):
        deep = {"d": deep}
    r = stack.schedule(dict(ECHO, script_request_params=deep))
    assert r.status_code in (202, 422), r.text
    if r.status_code == 202:
        stack.wait_job(r.json()["job_id"], states=("done", "failed"), timeout=30)
    else:
        refused(r, 422, "script_request_params")
    deeper = json.dumps({"a": 1})
    for _ in range(3000):
        deeper = '{"d":' + deeper + "}"
    r = stack.schedule(None, raw='{"trigger_code":"demo_echo","lead_id":1,"script_request_params":' + deeper + "}")
    assert r.status_code in (400, 422), r.text
    refused(r, r.status_code)
    assert stack.schedule(later()).status_code == 202
    assert all(w.alive() for w in stack.workers)


def test_huge_numbers(stack):
    for field in ("lead_id", "ticket_id", "trigger_id"):
        body = dict(later(), **{field: 1})
        if field == "trigger_id":
            del body["trigger_code"]
        for raw_num in ("1e400", "99999999999999999999999", "-99999999999999999999999"):
            raw = json.dumps(body).replace(f'"{field}": 1', f'"{field}": {raw_num}')
            r = stack.schedule(None, raw=raw)
            assert r.status_code in (400, 422), (field, raw_num, r.status_code, r.text)
            refused(r, r.status_code, "body" if r.status_code == 400 else field)
        for num in (0, -1, 1.5, 1e300, -(2**63)):
            refused(stack.schedule(dict(body, **{field: num})), 422, field)
    # The largest id there is: valid in form; no such lead / trigger to find.
    r = stack.schedule(later(lead=I64_MAX))
    assert r.status_code in (202, 404, 422), r.text
    r = stack.schedule({"trigger_id": I64_MAX, "lead_id": 1})
    refused(r, 404, "trigger_id")
    refused(stack.api("GET", f"/api/v1/bots/1/jobs?lead_id={I64_MAX}1"), 422, "lead_id")
    refused(stack.api("GET", "/api/v1/bots/1/jobs?limit=99999999999999999999"), 422, "limit")
    refused(stack.api("DELETE", f"/api/v1/bots/1/leads/{I64_MAX}9/jobs"), 404)
    refused(stack.schedule(later(), bot=f"{I64_MAX}9"), 404)
    refused(stack.schedule(later(), bot=I64_MAX), 404)


def test_negative_and_overflowing_delays(stack):
    for v in (-1, -(2**63), I64_MAX, 2**62, 10**15, 366 * 86400 + 1, 1.5, True):
        refused(stack.schedule(dict(ECHO, run_after_sec=v)), 422, "run_after_sec")
    for v in (0, 9, -10, I64_MAX, 2**62, 366 * 86400 + 1, 1.5):
        refused(stack.schedule(dict(ECHO, is_periodic=True, repeat_interval_sec=v)), 422, "repeat_interval_sec")
    for v in ("9999-12-31 23:59:59", "9999-12-31T23:59:59-00:01", "10000-01-01 00:00:00", "2026-02-30 10:00:00",
              "1969-12-31 23:59:59", "1970-01-01T00:30:00+01:00", "2026-01-21 25:00:00", "2026-01-21T18:00:00+99:00",
              "2026-01-21 18:00:00.", "", "0", SQL):
        refused(stack.schedule(dict(ECHO, run_at=v)), 422, "run_at")
    # At the edges: a run_at in the past is due now; 0 s is due now; the horizon itself is fine.
    assert stack.schedule(dict(ECHO, run_at="1970-01-01 00:00:00")).status_code == 202
    assert stack.schedule(dict(ECHO, run_after_sec=0)).status_code == 202
    assert stack.schedule(dict(ECHO, run_after_sec=366 * 86400)).status_code == 202


def test_sql_looking_strings_everywhere(stack):
    before = stack.sql("SELECT count(*) FROM jobs")[0][0]
    refused(stack.schedule({"trigger_code": SQL, "lead_id": 1}), 404, "trigger_code")
    refused(stack.schedule({"script_code": SQL, "lead_id": 1}), 404, "script_code")
    refused(stack.schedule({"broadcast_code": SQL}), 404, "broadcast_code")
    refused(stack.schedule(dict(ECHO, lead_id=SQL)), 422, "lead_id")
    refused(stack.schedule(dict(ECHO, run_after_sec=SQL)), 422, "run_after_sec")
    refused(stack.schedule(later(), bot="1%20OR%201=1"), 404)
    refused(stack.schedule(later(), path="/api/v1/bots/1;DROP%20TABLE%20jobs/jobs/schedule"), 404)
    refused(stack.api("GET", "/api/v1/bots/1/jobs/" + requests.utils.quote(SQL)), 404)
    refused(stack.api("DELETE", "/api/v1/bots/1/jobs/" + requests.utils.quote(SQL)), 404)
    refused(stack.api("DELETE", "/api/v1/bots/1/leads/" + requests.utils.quote(SQL) + "/jobs"), 404)
    for q in ("status", "lead_id", "limit", "cursor"):
        refused(stack.api("GET", "/api/v1/bots/1/jobs", params={q: SQL}), 422, q)
    refused(stack.schedule(later(), token=SQL), 401)
    refused(stack.schedule(later(), token=False, headers={"Authentication": "' OR '1'='1"}), 401)

    # Where strings are data, they are stored as data, byte for byte, and run.
    key = SQL + uuid.uuid4().hex
    r = stack.schedule({"trigger_code": "demo_echo", "lead_id": 2, "script_request_params": {"text": SQL, SQL: SQL},
                        "condition_script_code": "return request.json.text === " + json.dumps(SQL) + ";"},
                       headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert stack.schedule({"trigger_code": "demo_echo", "lead_id": 2,
                           "script_request_params": {"text": SQL, SQL: SQL},
                           "condition_script_code": "return request.json.text === " + json.dumps(SQL) + ";"},
                          headers={"Idempotency-Key": key}).json()["job_id"] == job_id
    stack.wait_job(job_id)
    tag = SQL.replace(",", "")
    r = stack.schedule({"lead_id": 3, "add_tags": tag})
    assert r.status_code == 202, r.text
    stack.wait_job(r.json()["job_id"])
    assert tag in stack.lead(3)["tags"], stack.lead(3)
    params = stack.sql("SELECT params FROM jobs WHERE job_id = %s", job_id)[0][0]
    assert params == {"text": SQL, SQL: SQL}, params
    listed = stack.api("GET", "/api/v1/bots/1/jobs", params={"lead_id": 2}).json()["jobs"]
    assert [j["job_id"] for j in listed] == [job_id]
    assert stack.sql("SELECT count(*) FROM jobs")[0][0] == before + 2
    assert stack.sql("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")[0][0] >= 1


# --- tenancy and tokens --------------------------------------------------------------------------------


def endpoints(prefix, bot, job_id):
    return (("POST", f"{prefix}/bots/{bot}/jobs/schedule", {"json": later()}),
            ("GET", f"{prefix}/bots/{bot}/jobs/{job_id}", {}),
            ("GET", f"{prefix}/bots/{bot}/jobs", {}),
            ("GET", f"{prefix}/bots/{bot}/jobs?lead_id=1", {}),
            ("DELETE", f"{prefix}/bots/{bot}/jobs/{job_id}", {}),
            ("DELETE", f"{prefix}/bots/{bot}/leads/1/jobs", {}))


def test_cross_tenant_access_on_every_endpoint_and_prefix(stack):
    stack.sql("INSERT INTO businesses (name) VALUES ('Rival')")
    stack.sql("INSERT INTO bots (id, business_id, name) SELECT 55, id, 'rival' FROM businesses WHERE name = 'Rival'")
    rival = stack.ctl("token", "create", "Rival", "theirs").strip()
    wait_for(lambda: stack.schedule({"lead_id": 1, "add_tags": "r"}, bot=55, token=rival).status_code == 202, 10,
             what="the rival's bot and token in the catalog")
    ours = stack.schedule(later(lead=1)).json()["job_id"]
    theirs = stack.schedule({"lead_id": 1, "add_tags": "r", "run_after_sec": 3600}, bot=55, token=rival).json()["job_id"]
    stack.wait_job(ours, states=("scheduled",))
    stack.wait_job(theirs, states=("scheduled",))

    for prefix in PREFIXES:
        # Each business's token on the other's bot: 403 on every route, whatever the job id.
        for token, bot, job_id in ((rival, 1, ours), (rival, 1, theirs), (stack.token, 55, theirs),
                                   (stack.token, 55, ours)):
            for method, path, kw in endpoints(prefix, bot, job_id):
                refused(stack.api(method, path, token=token, **kw), 403)
        # A business's own bot with the other's job id: not found, never shown, never cancelled.
        for token, bot, job_id in ((rival, 55, ours), (stack.token, 1, theirs)):
            refused(stack.api("GET", f"{prefix}/bots/{bot}/jobs/{job_id}", token=token), 404)
            refused(stack.api("DELETE", f"{prefix}/bots/{bot}/jobs/{job_id}", token=token), 404)
        listed = stack.api("GET", f"{prefix}/bots/55/jobs", token=rival).json()["jobs"]
        assert [j["job_id"] for j in listed] == [theirs] or ours not in [j["job_id"] for j in listed], listed
        listed = stack.api("GET", f"{prefix}/bots/1/jobs?lead_id=1").json()["jobs"]
        assert theirs not in [j["job_id"] for j in listed], listed
        # An unknown bot: 404 whoever asks; no token: 401 before anything is looked up.
        for method, path, kw in endpoints(prefix, 999, ours):
            refused(stack.api(method, path, token=rival, **kw), 404)
            refused(stack.api(method, path, token=False, **kw), 401, "Authorization")
    # An Idempotency-Key is the bot's: the rival using ours gets its own job, not ours.
    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    a = stack.schedule(later(), headers=key).json()["job_id"]
    b = stack.schedule({"lead_id": 1, "add_tags": "r", "run_after_sec": 3600}, bot=55, token=rival,
                       headers=key).json()["job_id"]
    assert a != b
    time.sleep(1)  # any cancel that got through would be applied by now
    assert stack.job(ours)["state"] == "scheduled" and stack.job(theirs)["state"] == "scheduled"


def test_revoked_and_expired_tokens_on_every_endpoint(stack):
    job_id = stack.schedule(later()).json()["job_id"]
    revoked = stack.ctl("token", "create", "Demo Inc", "to-revoke").strip()
    expired = stack.ctl("token", "create", "Demo Inc", "to-expire").strip()
    soon = stack.ctl("token", "create", "Demo Inc", "expires-soon").strip()
    wait_for(lambda: all(stack.schedule(later(), token=t).status_code == 202 for t in (revoked, expired, soon)), 10,
             what="the new tokens")
    ids = {t["name"]: t["id"] for t in json.loads(stack.ctl("token", "list", "--json"))}
    stack.ctl("token", "revoke", str(ids["to-revoke"]))
    stack.sql("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", ids["to-expire"])
    # Expiry needs no notification: the token expires while the producer holds it in its cache.
    stack.sql("UPDATE api_tokens SET expires_at = now() + interval '3 seconds' WHERE id = %s", ids["expires-soon"])
    wait_for(lambda: stack.schedule(later(), token=expired).status_code == 401, 10, what="the changes to apply")
    wait_for(lambda: stack.schedule(later(), token=revoked).status_code == 401, 10, what="the revocation")
    time.sleep(3.5)
    for prefix in PREFIXES:
        for token in (revoked, expired, soon):
            for method, path, kw in endpoints(prefix, 1, job_id):
                b = refused(stack.api(method, path, token=token, **kw), 401)
                assert "token" in b["message"], b
    assert stack.job(job_id)["state"] == "scheduled"
    assert stack.schedule(later()).status_code == 202, "the other tokens still work"


def test_replayed_idempotency_key_with_a_different_body(stack):
    key = {"Idempotency-Key": "replay-" + uuid.uuid4().hex}
    first = stack.schedule(later(60), headers=key)
    assert first.status_code == 202
    for body in (later(61), later(60, lead=2), dict(later(60), add_tags="x"), {"lead_id": 1, "add_tags": "x"}):
        refused(stack.schedule(body, headers=key), 422, "Idempotency-Key")
    # The same JSON with other whitespace is another body too: the key's promise is byte for byte.
    raw = json.dumps(later(60), indent=2)
    refused(stack.schedule(None, raw=raw, headers=key), 422, "Idempotency-Key")
    again = stack.schedule(later(60), headers=key)
    assert again.status_code == 202 and again.json()["job_id"] == first.json()["job_id"]
    # Wait for the job itself, then for a later job of each lead named
    # (same partition as that lead's refused bodies): nothing else was stored.
    stack.wait_job(first.json()["job_id"], states=("scheduled",))
    markers = [stack.settle(later(3600, lead=lead)) for lead in (1, 2)]
    assert stack.sql("SELECT count(*) FROM jobs WHERE bot_id = 1 AND job_id <> ALL(%s::uuid[])", markers)[0][0] == 1


def test_connections_from_one_address_are_capped(make_stack):
    """--max-per-ip: one address cannot take every connection; the ones it holds open are cut in time."""
    s = make_stack(producer_args=["--max-per-ip=4", "--read-timeout-sec=2"])
    s.start_worker()
    s.start_producer()
    held = []
    try:
        for attempt in range(5):
            for x in held:
                x.close()
            held = [socket.create_connection(host_port(s), timeout=10) for _ in range(4)]
            time.sleep(0.2)
            try:
                r = s.schedule(later())
            except requests.ConnectionError:
                r = None
            if r is None:
                break
            # Served. Only acceptable when the server was still accepting the held ones as the fifth came
            # (thread pool: another thread counted the fifth first) and so refused one of the held instead.
            time.sleep(0.5)
            closed = [x for x in held if closed_by_peer(x)]
            assert closed, f"a fifth connection from 127.0.0.1 was served while 4 were held: {r.status_code}"
        assert r is None, "every attempt raced the server's accepts; the limit was never seen to hold"
        # The idle ones are closed by the server within --read-timeout-sec; the address is served again.
        wait_for(lambda: all(x.recv(1) == b"" for x in held), 10, what="the held connections to be closed")
    finally:
        for x in held:
            x.close()

    def served():  # MHD forgets a closed connection a moment after closing it: refused until then
        try:
            return s.schedule(later()).status_code == 202
        except requests.ConnectionError:
            return False
    wait_for(served, 10, interval=0.1, what="the address to be served again")
