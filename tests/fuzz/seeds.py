#!/usr/bin/env python3
"""
seeds.py - writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/seed-*) from the inputs
the other tests already use: the contract corpus (tests/contract/), the tables of the unit tests
(tests/unit/test_job.c, test_time.c, test_frame.c, test_sandbox.c, test_host.c, test_js.c, test_js_api.c, test_batch.c) and the requests of the
integration tests. Deterministic; run it again after those change: `python3 tests/fuzz/seeds.py`.
Inputs the fuzzers found (crashes, once fixed) live next to the seeds as found-* and are kept.
"""
import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"
UNIT = ROOT / "tests" / "unit"
CONTRACT = ROOT / "tests" / "contract"
TS = b"1800000000000\n"  # the fuzz targets' fixed "now" (2027-01-15T08:00:00Z), in Kafka's milliseconds
UUID = "019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70"


def c_strings(text):
    """The C string literals of a source text, adjacent ones joined, decoded."""
    out = []
    for m in re.finditer(r'((?:"(?:[^"\\\n]|\\.)*"\s*)+)', text):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(1))
        raw = "".join(parts)
        out.append(raw.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1"))
    return out


def corpus_lines(kind):
    for path in sorted((CONTRACT / kind).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                case = json.loads(line)
                yield case["raw"].encode() if "raw" in case else json.dumps(case["body"]).encode()


def frame(body):
    return len(body).to_bytes(4, "big") + body


def write(target, seeds):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    seen = set()
    for s in seeds:
        h = hashlib.sha1(s).hexdigest()
        if h not in seen:
            seen.add(h)
            (d / f"seed-{h[:16]}").write_bytes(s)
    print(f"{target}: {len(seen)} seeds")


def request_seeds():
    seeds = list(corpus_lines("requests"))
    # test_job.c: the bodies of its tables ({"label", "body", "bad"}).
    for s in c_strings((UNIT / "test_job.c").read_text()):
        if s.startswith(b"{") and b'":' in s:
            seeds.append(s)
    return seeds


def envelope_seeds():
    seeds = [TS + b for b in corpus_lines("envelopes")]
    for s in c_strings((UNIT / "test_job.c").read_text()):
        if s.startswith(b"{") and b'"v":' in s:
            seeds.append(TS + s)
    # Timestamps a publisher may set: none (0, -1) and the message without a timestamp line.
    ok = json.dumps({"v": 1, "type": "schedule", "job_id": UUID, "bot_id": 1, "lead_id": 1,
                     "trigger_code": "demo_echo", "run_after_sec": 30}).encode()
    seeds += [b"0\n" + ok, b"-1\n" + ok, ok]
    return seeds


def run_at_seeds():
    seeds = []
    text = (UNIT / "test_time.c").read_text()
    for s in c_strings(text):
        if re.match(rb"^[0-9]{4}", s) or s == b"":
            seeds.append(s)
    for body in corpus_lines("requests"):
        try:
            v = json.loads(body).get("run_at")
        except (ValueError, AttributeError):
            continue
        if isinstance(v, str):
            seeds.append(v.encode())
    return seeds


PROTOCOL = [
    b'{"type":"hello","v":3,"pid":1234}',
    b'{"type":"run","v":3,"host":true,"req":{"context":{"botId":1,"leadId":2,"ticketId":null,"jobId":"' +
    UUID.encode() + b'"},"lead":{"id":2,"name":"Ann","channel":"telegram","attributes":{"a":1},"tags":["x"]},'
    b'"bot":{"id":1,"name":"demo","attributes":{}},"params":{"text":"hi"},"code":"return 1;","name":"trigger t"}}',
    b'{"type":"call","method":"findLeads","args":{"where":[["attr.score",">=",10]],"limit":5}}',
    b'{"type":"result","result":[{"id":1,"name":"Ann"}]}',
    b'{"type":"error","error":"unknown field \'password\'"}',
    b'{"type":"reply","reply":{"outcome":"done","result":{"echoed":"x"},"effects":{"messages":[{"text":"hi"}]}}}',
    b'{"type":"reply","reply":{"outcome":"failed","error":"trigger t, line 3: TypeError","error_line":3}}',
    b'{"nul":"a\\u0000b","big":1e300,"int":9007199254740993,"neg":-0.0}',
]


def frame_seeds():
    seeds = []
    cap = bytes([16])  # cap 1 << 16
    for m in PROTOCOL:
        seeds.append(cap + frame(m))
    seeds.append(cap + b"".join(frame(m) for m in PROTOCOL))
    # test_frame.c's malformed streams, and a cap smaller than the frame.
    seeds += [cap + b"\0\0\1\0{}", cap + b"\0\0\0\0", cap + b"\0\0\0\3abc", cap + b"\0\0\0\2[]", cap + b"\0\0",
              cap + b"\0\0\0\x0a{\"a\":", cap, bytes([4]) + frame(PROTOCOL[0]), cap + b"\xff\xff\xff\xff"]
    return seeds


def sandbox_seeds():
    hello = PROTOCOL[0]
    done = b'{"type":"reply","reply":{"outcome":"done","result":1}}'
    seeds = [hello + b"\n" + done, hello, b'{"type":"hello","v":99,"pid":1}\n' + done,
             b'{"type":"reply","reply":{"outcome":"done"}}']
    # A run for many leads: replies in "replies" frames, a call between them, too many, a bad one.
    two = b'{"type":"replies","replies":[{"outcome":"done","result":1},{"outcome":"skipped"}]}'
    one = b'{"type":"replies","replies":[{"outcome":"failed","error":"trigger t, line 1: Error: x"}]}'
    seeds += [hello + b"\n" + two + b"\n" + one,
              hello + b"\n" + one + b'\n{"type":"call","method":"findLeads","args":{"limit":1}}\n' + two,
              hello + b"\n" + two + b"\n" + two, hello + b'\n{"type":"replies","replies":[]}',
              hello + b'\n{"type":"replies","replies":[{"outcome":"done"},{"outcome":"won"}]}']
    # Replies to many requests say when each started: in the window, before it, not a number.
    seeds += [hello + b'\n{"type":"replies","replies":[{"outcome":"done","started_us":1},'
              b'{"outcome":"done","started_us":9223372036854775807},{"outcome":"skipped","started_us":"x"}]}']
    # test_sandbox.c: what a broken child sends after its hello.
    for bad in (b"this is not json", b"[1,2]", b'{"type":"bogus"}', b'{"type":"reply","reply":{"effects":{}}}',
                b'{"type":"reply","reply":{"outcome":"won"}}', b'{"type":"call","args":{}}',
                b'{"type":"call","method":"findLeads"}'):
        seeds.append(hello + b"\n" + bad)
    # test_host.c: findLeads arguments, each as a call, then a reply.
    for s in c_strings((UNIT / "test_host.c").read_text()):
        if s.startswith(b"{") and (b'"where"' in s or b'"order_by"' in s or b'"columns"' in s or s == b"{}"):
            seeds.append(hello + b'\n{"type":"call","method":"findLeads","args":' + s + b"}\n" + done)
    for url in (b"https://api.example.com/v1/x?a=1", b"http://127.0.0.1:8080/", b"http://[::ffff:169.254.169.254]/",
                b"ftp://example.com/", b"http://user:pw@example.com/", b"http://0x7f000001/", b"https://10.1.2.3/"):
        seeds.append(hello + b'\n{"type":"call","method":"api.getJson","args":{"url":"' + url + b'","headers":'
                     b'{"X-A":"1"}}}\n{"type":"call","method":"api.postJson","args":{"url":"' + url +
                     b'","body":{"a":[1]}}}\n' + done)
    seeds.append(hello + b'\n{"type":"call","method":"shell","args":{}}\n' + done)
    return seeds


def http(method, path, body=None, token="good", headers=()):
    lines = [f"{method} {path}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += list(headers)
    text = "\n".join(lines).encode() + b"\n\n"
    return text + (body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b"")


def api_seeds():
    ok = {"trigger_code": "demo_echo", "lead_id": 1, "run_after_sec": 60, "script_request_params": {"text": "x"}}
    s = "/api/v1/bots/1/jobs/schedule"
    seeds = [
        http("POST", s, ok), http("POST", "/bots/1/jobs/schedule", ok),
        http("POST", s, ok, headers=["Idempotency-Key: order-1"]),
        http("POST", s, ok, token=None, headers=["Authentication: good"]),
        http("POST", s, ok, token=None, headers=["Authentication: Bearer good"]),
        http("POST", s, ok, token=None, headers=["Authorization: Basic dXNlcjpwYXNz"]),
        http("POST", s, ok, token=None), http("POST", s, ok, token="bj_" + "x" * 43),
        http("POST", "/api/v1/bots/2/jobs/schedule", ok), http("POST", "/api/v1/bots/999/jobs/schedule", ok),
        http("POST", s, {"trigger_code": "no_such_trigger", "lead_id": 1}),
        http("POST", s, {"trigger_id": 3, "lead_id": 1, "is_periodic": True, "repeat_interval_sec": 60}),
        http("POST", s, b'{"trigger_code": '), http("POST", s, b"[1]"),
        http("POST", s, {"trigger_code": 5, "lead_id": -1, "run_at": "tomorrow", "is_periodic": True}),
        http("POST", "/api/v1/nothing", ok),
        http("POST", s, token="good", headers=["Content-Type: text/plain"]) + json.dumps(ok).encode(),
        http("POST", s, {"lead_id": 1, "add_tags": "a,b", "remove_tags": ["c"]}),
        http("GET", f"/api/v1/bots/1/jobs/{UUID}"), http("GET", f"/bots/1/jobs/{UUID}"),
        http("DELETE", f"/api/v1/bots/1/jobs/{UUID}"), http("DELETE", "/api/v1/bots/1/leads/2/jobs"),
        http("DELETE", "/bots/1/leads/abc/jobs"), http("GET", "/api/v1/bots/1/jobs/not-a-uuid"),
        http("GET", f"/api/v1/bots/1/jobs?lead_id=2&limit=2&cursor={UUID}&status=scheduled"),
        http("GET", "/api/v1/bots/1/jobs?lead_id=x&status=asleep&limit=5000&cursor=nope"),
        http("GET", "/api/v1/bots/1/jobs?lead_id=1%27%20OR%20%271%27%3D%271&status=done%3B+DROP+TABLE+jobs"),
        http("PUT", "/api/v1/bots/1/jobs"), http("GET", "/api/v1/bots/2/jobs", token="rival"),
        http("DELETE", "/api/v1/bots/1/leads/1/jobs", token="rival"),
    ]
    return seeds


def js_seeds():
    base = {"context": {"botId": 1, "leadId": 7, "jobId": "01a212f2-b91c-7e27-83e4-9f71b82b0035"},
            "lead": {"id": 7, "name": "Ann", "channel": "telegram", "attributes": {"lang": "en"}, "tags": ["a", "b"]},
            "bot": {"id": 1, "attributes": {"greeting": "Hello"}}, "params": {"text": "hi"}, "name": "trigger t"}
    seeds = []
    for name in ("test_js.c", "test_js_api.c"):
        for s in c_strings((UNIT / name).read_text()):
            code = s.decode("utf-8", "replace")
            if ("(" in code or "return" in code) and len(code) > 8 and "%" not in code:
                seeds.append(json.dumps(dict(base, code=code)).encode())
    seeds.append(json.dumps(dict(base, code="return 1;", tags={"remove": ["a"], "add": ["c"]})).encode())
    seeds.append(json.dumps(dict(base, code="ticket.update({s: 1}); return ticket.getData('s');",
                                 ticket={"id": 3, "data": {"s": 0}})).encode())
    seeds.append(json.dumps(dict(base, code="return bot.findLeads(['name'], [['attr.x', '>', 1]], 'id', 5, 0);")).encode())
    seeds.append(json.dumps(dict(base, code="return api.getJson('https://example.com/x');")).encode())
    return seeds


def pg_json(v):
    """JSON as PostgreSQL prints a jsonb: ", " and ": " between tokens, names shortest first."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(json.dumps(k, ensure_ascii=False) + ": " + pg_json(v[k]) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(pg_json(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def batch_seeds():
    """Outbox batch rows: test_batch.c's texts, and event batches as the worker's SQL stores them."""
    seeds = [s for s in c_strings((UNIT / "test_batch.c").read_text()) if s.startswith(b"[")]
    at = "2027-01-15T08:00:00.000Z"
    started = [{"key": f"900:{i}", "payload": {"v": 1, "type": "job.started", "job_id": UUID, "bot_id": 900,
                                               "lead_id": i, "due_at": at, "run": 1, "worker": "w1", "at": at}}
               for i in range(1, 4)]
    done = [{"key": "900:-", "payload": {"v": 1, "type": "job.done", "job_id": UUID, "bot_id": 900, "lead_id": None,
                                        "result": {"n": [1, 2.5, "é \"q\" \n"], "ok": True}, "at": at}},
            {"key": None, "payload": {"v": 1, "type": "job.failed", "error": "TypeError: x is undefined",
                                      "error_line": 3, "at": at}}]
    seeds += [pg_json(started).encode(), pg_json(done).encode(), b"[]"]
    return seeds


if __name__ == "__main__":
    write("batch", batch_seeds())
    write("request", request_seeds())
    write("envelope", envelope_seeds())
    write("run_at", run_at_seeds())
    write("frame", frame_seeds())
    write("sandbox", sandbox_seeds())
    write("api", api_seeds())
    write("js", js_seeds())
