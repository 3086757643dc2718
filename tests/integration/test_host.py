"""
The worker's answers to bot JavaScript's outside calls (issue 6): bot.findLeads on the run's own bot
only, and api.getJson / api.postJson against a real HTTP server started by the test, with the
address policy (private, loopback and link-local targets refused by default), the size cap and the
timeout. Jobs are published straight to the jobs topic; the trigger's return value is the run's result.
"""
import http.server
import json
import threading
import time
import uuid

import pytest
import requests

from conftest import wait_for

FIND = """
var q = request.json;
return {leads: bot.findLeads(q.columns || null, q.where, q.order_by || null, q.limit || null, q.offset || null)};
"""

API = """
var q = request.json;
if (q.headers) api.setHeaders(q.headers);
var body = q.post ? api.postJson(q.url, q.body) : api.getJson(q.url);
return {status: api.getLastResponseCode(), body: body};
"""

CATCH = """
try { api.getJson(request.json.url); return 'called'; } catch (e) { return 'caught: ' + e.message; }
"""


def add_trigger(stack, bot, code, body, tid):
    stack.sql("INSERT INTO triggers (bot_id, id, code, body) VALUES (%s, %s, %s, %s)", bot, tid, code, body)


def run_trigger(stack, bot, code, params, states=("done",), timeout=20, lead=None):
    """Publishes a trigger job for bot and waits for it; returns (job, its last run: (outcome, error))."""
    job_id = str(uuid.uuid4())
    env = {"v": 1, "type": "schedule", "job_id": job_id, "bot_id": bot, "trigger_code": code,
           "script_request_params": params}
    if lead:
        env["lead_id"] = lead
    stack.produce("jobs", json.dumps(env).encode(), key=f"{bot}:{lead or '-'}".encode())
    job = stack.wait_job(job_id, states=states, timeout=timeout)
    runs = stack.sql("SELECT outcome, error FROM job_runs WHERE job_id = %s ORDER BY id", job_id)
    return job, runs[-1] if runs else None


def run_many(stack, bot, code, params_list, timeout=30):
    """Publishes several jobs at once and waits for them all to finish; returns the jobs in order, each with
    its job_id and the error of its last run."""
    ids = [str(uuid.uuid4()) for _ in params_list]
    pairs = [(f"{bot}:-".encode(), json.dumps({"v": 1, "type": "schedule", "job_id": j, "bot_id": bot,
                                               "trigger_code": code, "script_request_params": p}).encode())
             for j, p in zip(ids, params_list)]
    stack.produce_many("jobs", pairs)
    jobs = []
    for j in ids:
        job = dict(stack.wait_job(j, states=("done", "failed"), timeout=timeout), job_id=j)
        job["error"] = stack.sql("SELECT error FROM job_runs WHERE job_id = %s ORDER BY id DESC LIMIT 1", j)[0][0]
        jobs.append(job)
    return jobs


# --- findLeads --------------------------------------------------------------------------------------

# bot 1 (Demo Inc, from the demo manifest: 1 Alice, 2 Bob, 3 Carol) gets more leads; bot 2 of another
# business gets leads with the same ids and names, marked owner=other.
BOT1_LEADS = [
    (10, "Ann", "telegram", {"score": "15", "city": "Berlin", "plan": "pro"}, ["vip"], 1, False),
    (11, "Anna", "whatsapp", {"score": "9", "city": "Moscow"}, ["vip", "new"], 2, True),
    (12, "Boris", "api", {"score": "abc"}, [], None, False),
    (13, None, "web", {"score": 100}, ["new"], None, False),
]
BOT2_LEADS = [
    (10, "Ann", "telegram", {"score": "15", "city": "Berlin", "owner": "other"}, ["vip"], 1, False),
    (11, "Anna", "whatsapp", {"score": "9", "owner": "other"}, ["vip"], None, False),
    (20, "Ann Other", "telegram", {"owner": "other"}, ["vip"], None, False),
]


def seed_leads(stack):
    stack.sql("INSERT INTO businesses (name) VALUES ('Other Co')")
    stack.sql("INSERT INTO bots (id, business_id, name) SELECT 2, id, 'theirs' FROM businesses WHERE name = 'Other Co'")
    for bot, leads in ((1, BOT1_LEADS), (2, BOT2_LEADS)):
        for lid, name, channel, attrs, tags, status, muted in leads:
            stack.sql("INSERT INTO leads (bot_id, id, name, channel, attributes, tags, status_id, muted)"
                      " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                      bot, lid, name, channel, json.dumps(attrs), tags, status, muted)
    add_trigger(stack, 1, "find", FIND, 101)
    add_trigger(stack, 2, "find", FIND, 101)


# (label, findLeads arguments, the ids bot 1 must get, in order)
FIND_CASES = [
    ("[field, value]", {"where": ["name", "Ann"]}, [10]),
    ("[field, op, value]", {"where": ["name", "like", "Ann%"]}, [10, 11]),
    ("a list (AND)", {"where": [["tags", "contains", "vip"], ["channel", "telegram"]]}, [10]),
    ("tags shorthand", {"where": ["tags", "new"]}, [11, 13]),
    ("not contains", {"where": ["tags", "not contains", "vip"]}, [1, 3, 12, 13]),
    ("attribute > number is numeric", {"where": ["attributes.score", ">", 10]}, [10, 13]),
    ("attr. alias, in", {"where": ["attr.city", "in", ["Berlin", "Moscow"]]}, [10, 11]),
    ("attribute = as text", {"where": ["attr.lang", "de"]}, [2]),
    ("is null", {"where": ["status_id", "is null"]}, [1, 2, 3, 12, 13]),
    ("is not null", {"where": ["name", "is not null", None]}, [1, 2, 3, 10, 11, 12]),
    ("muted", {"where": ["muted", True]}, [11]),
    ("!= keeps empty names", {"where": ["name", "!=", "Ann"]}, [1, 2, 3, 11, 12, 13]),
    ("not in", {"where": ["id", "not in", [1, 2, 3]]}, [10, 11, 12, 13]),
    ("created_at", {"where": ["created_at", ">", "2000-01-01 00:00:00"]}, [1, 2, 3, 10, 11, 12, 13]),
    ("orderBy an attribute, numbers first", {"where": ["id", ">=", 10], "order_by": "attributes.score desc"},
     [13, 10, 11, 12]),
    ("limit and offset", {"where": None, "order_by": "id desc", "limit": 2, "offset": 1}, [12, 11]),
    ("a quote stays data", {"where": ["name", "x' OR '1'='1"]}, []),
    ("SQL in an attribute key stays data", {"where": ["attributes.x'); DELETE FROM leads; --", "is null"]},
     [1, 2, 3, 10, 11, 12, 13]),
]


def test_find_leads_sees_exactly_the_matching_leads_of_its_own_bot(make_stack):
    stack = make_stack()
    stack.start_worker()
    seed_leads(stack)

    jobs = run_many(stack, 1, "find", [args for _, args, _ in FIND_CASES])
    for (label, args, want), job in zip(FIND_CASES, jobs):
        assert job["state"] == "done", f"{label}: {job}"
        got = [lead["id"] for lead in job["result"]["leads"]]
        assert got == want, f"{label}: got {got}, want {want}"
        for lead in job["result"]["leads"]:
            assert lead.get("attributes", {}).get("owner") != "other", f"{label}: another bot's lead: {lead}"
    assert stack.sql("SELECT count(*) FROM leads")[0][0] == 3 + len(BOT1_LEADS) + len(BOT2_LEADS)

    # The default columns, and a chosen subset.
    job, _ = run_trigger(stack, 1, "find", {"where": ["id", 10]})
    assert job["result"]["leads"] == [{"id": 10, "name": "Ann", "channel": "telegram", "status_id": 1, "muted": False,
                              "tags": ["vip"], "attributes": {"score": "15", "city": "Berlin", "plan": "pro"}}]
    job, _ = run_trigger(stack, 1, "find", {"columns": ["id", "name"], "where": ["name", "like", "A%"]})
    assert job["result"]["leads"] == [{"id": 1, "name": "Alice"}, {"id": 10, "name": "Ann"}, {"id": 11, "name": "Anna"}]

    # The same trigger in the other bot sees that bot's leads only.
    job, _ = run_trigger(stack, 2, "find", {"where": ["name", "like", "Ann%"], "columns": ["id", "attributes"]})
    assert [lead["id"] for lead in job["result"]["leads"]] == [10, 11, 20]
    assert all(lead["attributes"]["owner"] == "other" for lead in job["result"]["leads"])

    # Bad input fails the run with a message the script's author can act on.
    job, run = run_trigger(stack, 1, "find", {"where": ["password", "x"]}, states=("failed",))
    assert run[0] == "failed" and "findLeads: unknown field 'password'" in run[1], run
    job, run = run_trigger(stack, 1, "find", {"where": ["id", "like", "1%"]}, states=("failed",))
    assert "findLeads: where: operator 'like' does not apply to 'id'" in run[1], run

    m = requests.get(stack.workers[0].http + "/metrics", timeout=5).text
    assert f'botjobs_worker_host_calls_total{{method="findLeads",outcome="ok"}} {len(FIND_CASES) + 3}' in m, m
    assert 'botjobs_worker_host_calls_total{method="findLeads",outcome="invalid"} 2' in m


# --- api.* --------------------------------------------------------------------------------------------

class Server:
    """A local HTTP server in a thread: JSON, text, echo, status, redirects, a big body, a slow answer."""

    def __init__(self):
        self.hits = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body, ctype="application/json", headers=()):
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                hits.append(("GET", self.path, dict(self.headers)))
                port = self.server.server_address[1]
                if self.path == "/json":
                    self.send(200, json.dumps({"hello": "world", "n": [1, 2]}))
                elif self.path == "/text":
                    self.send(200, "plain text", "text/plain")
                elif self.path == "/missing":
                    self.send(404, json.dumps({"error": "nope"}))
                elif self.path == "/redirect":
                    self.send(302, "", headers=[("Location", "/json")])
                elif self.path == "/redirect-away":
                    self.send(302, "", headers=[("Location", f"http://localhost:{port}/json")])
                elif self.path == "/loop":
                    self.send(302, "", headers=[("Location", "/loop")])
                elif self.path == "/big":
                    self.send(200, json.dumps({"blob": "x" * (1100 * 1024)}))
                elif self.path == "/slow":
                    time.sleep(3)
                    self.send(200, json.dumps({"late": True}))
                else:
                    self.send(404, "no such path", "text/plain")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                hits.append(("POST", self.path, dict(self.headers)))
                self.send(201, json.dumps({"got": json.loads(raw), "key": self.headers.get("X-Key"),
                                           "ctype": self.headers.get("Content-Type")}))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_api_calls_reach_a_local_server_when_private_targets_are_allowed(make_stack, server):
    stack = make_stack()
    stack.start_worker("--api-allow-private=true", "--api-timeout-ms=1500")
    add_trigger(stack, 1, "api", API, 102)
    u = server.url
    cases = [
        {"url": u + "/json"},
        {"url": u + "/text"},
        {"url": u + "/missing"},
        {"url": u + "/echo", "post": True, "body": {"a": [1, "two"], "b": None}, "headers": {"X-Key": "k1"}},
        {"url": u + "/redirect"},
        {"url": u + "/redirect-away"},
        {"url": u + "/loop"},
        {"url": u + "/big"},
        {"url": u + "/slow"},
    ]
    jobs = run_many(stack, 1, "api", cases, timeout=40)
    ok, text, missing, echo, redirect, away, loop, big, slow = jobs

    assert ok["state"] == "done" and ok["result"] == {"status": 200, "body": {"hello": "world", "n": [1, 2]}}, ok
    assert text["result"] == {"status": 200, "body": "plain text"}, text
    assert missing["state"] == "done" and missing["result"] == {"status": 404, "body": {"error": "nope"}}, missing
    assert echo["result"] == {"status": 201, "body": {"got": {"a": [1, "two"], "b": None}, "key": "k1",
                                                      "ctype": "application/json"}}, echo
    assert redirect["result"] == {"status": 200, "body": {"hello": "world", "n": [1, 2]}}, redirect

    assert away["state"] == "failed", away
    assert "api.getJson: redirect from 127.0.0.1 to another host (localhost) refused" in away["error"], away
    assert loop["state"] == "failed" and "api.getJson: more than 3 redirects" in loop["error"], loop
    assert big["state"] == "failed", big
    assert "api.getJson: the response is larger than 1048576 bytes (refused)" in big["error"], big
    assert slow["state"] == "failed" and "api.getJson: 127.0.0.1: timed out after" in slow["error"], slow

    # What the server saw: our headers, and one request per hop.
    posts = [h for h in server.hits if h[0] == "POST"]
    assert len(posts) == 1 and posts[0][2].get("X-Key") == "k1" and posts[0][2].get("User-Agent", "").startswith("botjobs/")
    assert [h[1] for h in server.hits if h[1] in ("/redirect", "/json")].count("/json") == 2  # /json and after /redirect
    assert sum(1 for h in server.hits if h[1] == "/loop") == 4  # the first request and 3 redirects

    m = requests.get(stack.workers[0].http + "/metrics", timeout=5).text
    assert 'botjobs_worker_host_calls_total{method="api.getJson",outcome="ok"} 4' in m, m
    assert 'botjobs_worker_host_calls_total{method="api.postJson",outcome="ok"} 1' in m
    assert 'botjobs_worker_host_calls_total{method="api.getJson",outcome="refused"} 1' in m
    assert 'botjobs_worker_host_calls_total{method="api.getJson",outcome="failed"} 3' in m
    assert 'botjobs_worker_api_request_seconds_count{method="api.getJson"} 8' in m


def test_by_default_private_loopback_and_metadata_targets_are_refused(make_stack, server):
    stack = make_stack()
    w = stack.start_worker()
    add_trigger(stack, 1, "api", API, 102)
    add_trigger(stack, 1, "catch", CATCH, 103)
    cases = [
        ({"url": server.url + "/json"}, "api.getJson: 127.0.0.1 is a loopback address (refused)"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "api.getJson: 169.254.169.254 is a link-local address (refused)"),
        ({"url": f"http://localhost:{server.port}/json"}, "api.getJson: localhost ("),
        ({"url": f"http://[::ffff:127.0.0.1]:{server.port}/json"}, "is a loopback address (refused)"),
        ({"url": server.url + "/echo", "post": True, "body": {}}, "api.postJson: 127.0.0.1 is a loopback address (refused)"),
        ({"url": "file:///etc/passwd"}, "api.getJson: only http and https URLs are allowed, not file"),
    ]
    for params, want in cases:
        job, run = run_trigger(stack, 1, "api", params, states=("failed", "done"))
        assert job["state"] == "failed" and run[0] == "failed", (params, job)
        assert want in run[1], (want, run[1])
    assert server.hits == [], "a refused call reached the server"

    # A script may catch the refusal, and the worker keeps serving.
    job, _ = run_trigger(stack, 1, "catch", {"url": "http://169.254.169.254/"})
    assert job["result"] == "caught: api.getJson: 169.254.169.254 is a link-local address (refused)"
    job, _ = run_trigger(stack, 1, "demo_echo", {"text": "still here"}, lead=1)
    assert job["state"] == "done" and w.alive()
    assert requests.get(w.http + "/readyz", timeout=5).status_code == 200
    m = requests.get(w.http + "/metrics", timeout=5).text
    assert 'botjobs_worker_host_calls_total{method="api.getJson",outcome="refused"} 6' in m, m
    assert 'botjobs_worker_host_calls_total{method="api.postJson",outcome="refused"} 1' in m


def test_the_host_allow_list(make_stack, server):
    stack = make_stack()
    stack.start_worker("--api-allow-private=true", "--api-allow-hosts=localhost")
    add_trigger(stack, 1, "api", API, 102)
    job, run = run_trigger(stack, 1, "api", {"url": server.url + "/json"}, states=("failed",))
    assert "api.getJson: 127.0.0.1 is not an allowed host (--api-allow-hosts)" in run[1], run
    job, _ = run_trigger(stack, 1, "api", {"url": f"http://localhost:{server.port}/json"})
    assert job["result"] == {"status": 200, "body": {"hello": "world", "n": [1, 2]}}
