"""
Hostile bot code (issue 6): scripts that loop, recurse, eat memory or reach for a shell's host
functions run in the sandbox pool. Each must fail only its own run, with a clear error recorded in
job_runs, within the time limit, while ordinary jobs due at the same moment complete; the worker
keeps running and exits 0 on SIGTERM (the make_stack fixture checks that).
"""
import datetime as dt
import subprocess

from conftest import BIN, wait_for

TIMEOUT_MS = 2000

# (trigger code, body, what job_runs.error must contain)
HOSTILE = [
    ("h_loop", "while (true) {}", f"trigger 'h_loop': timed out after {TIMEOUT_MS} ms"),
    ("h_regex", "return /(a+)+b/.test('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');",
     f"trigger 'h_regex': timed out after {TIMEOUT_MS} ms"),
    ("h_recursion", "function f(n) { return f(n + 1) + 1; }\nreturn f(0);", "trigger 'h_recursion', stack overflow"),
    ("h_memory", "var a = [];\nfor (;;) a.push({i: a.length, s: 'x' + a.length});", "trigger 'h_memory', out of memory"),
    ("h_string", "var s = 'x';\nwhile (s.length < 100 * 1024 * 1024) s += s;\nreturn s.length;",
     "trigger 'h_string', out of memory"),
    ("h_load", "load('x');", "trigger 'h_load', line 1: ReferenceError: 'load' is not defined"),
    ("h_read", "return read('/etc/passwd');", "trigger 'h_read', line 1: ReferenceError: 'read' is not defined"),
    ("h_quit", "quit();", "trigger 'h_quit', line 1: ReferenceError: 'quit' is not defined"),
    ("h_require", "var fs = require('fs');\nreturn fs.readFileSync('/etc/passwd');",
     "trigger 'h_require', line 1: ReferenceError: 'require' is not defined"),
]


def rfc3339(t):
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def add_trigger(stack, tid, code, body):
    stack.sql("INSERT INTO triggers (bot_id, id, code, body) VALUES (1, %s, %s, %s)", tid, code, body)


def schedule_when_known(stack, body):
    """Schedules once the producer's catalog knows the target (it hears of new triggers by NOTIFY)."""
    def attempt():
        r = stack.schedule(body)
        if r.status_code == 404:
            return None
        assert r.status_code == 202, r.text
        return r.json()["job_id"]
    return wait_for(attempt, 10, what=f"{body.get('trigger_code')} in the producer's catalog")


def test_hostile_scripts_fail_alone_with_clear_errors(make_stack):
    stack = make_stack(worker_args=[f"--script-timeout-ms={TIMEOUT_MS}"])
    worker = stack.start_worker()
    stack.start_producer()
    stack.sql("INSERT INTO leads (bot_id, id, name, channel) SELECT 1, i, 'lead ' || i, 'telegram'"
              " FROM generate_series(100, 150) i")
    for i, (code, body, _) in enumerate(HOSTILE):
        add_trigger(stack, 100 + i, code, body)

    # Every hostile job and an ordinary one for other leads, all due at the same moment.
    due = rfc3339(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3))
    hostile, normal = {}, {}
    for i, (code, _, want) in enumerate(HOSTILE):
        hostile[schedule_when_known(stack, {"trigger_code": code, "lead_id": 100 + i, "run_at": due})] = (code, want)
        lead = 130 + i
        normal[schedule_when_known(stack, {"trigger_code": "demo_echo", "lead_id": lead, "run_at": due,
                                           "script_request_params": {"text": f"fine {lead}"}})] = lead

    for job_id, lead in normal.items():
        stack.wait_job(job_id, timeout=60)
        assert stack.lead(lead)["attributes"]["echo"] == f"fine {lead}"
    for job_id, (code, want) in hostile.items():
        job = stack.wait_job(job_id, states=("failed",), timeout=60)
        runs = stack.sql("SELECT outcome, error, extract(epoch FROM finished_at - started_at) FROM job_runs"
                         " WHERE job_id = %s", job_id)
        assert len(runs) == 1, f"{code}: {runs} (a script failure is not retried)"
        outcome, error, took = runs[0]
        assert outcome == "failed" and want in error, f"{code}: got {error!r}, want {want!r}"
        assert job["last_error"] == error
        assert float(took) < TIMEOUT_MS / 1000 + 1.5, f"{code}: the run took {took} s"
        if "timed out" in want:
            assert float(took) >= TIMEOUT_MS / 1000, f"{code}: killed after {took} s, before the limit"

    # Nothing of a failed run was applied, and the worker is still serving.
    for i in range(len(HOSTILE)):
        assert stack.lead(100 + i)["attributes"] == {}
    assert worker.alive()
    after = schedule_when_known(stack, {"trigger_code": "demo_echo", "lead_id": 1,
                                        "script_request_params": {"text": "after"}})
    stack.wait_job(after, timeout=20)
    assert "timed out after" in worker.tail(400)


def test_in_process_mode_still_runs_jobs(make_stack):
    """--sandbox=false keeps the old in-process runtime for debugging."""
    stack = make_stack(worker_args=["--sandbox=false"])
    worker = stack.start_worker()
    stack.start_producer()
    job_id = schedule_when_known(stack, {"trigger_code": "demo_echo", "lead_id": 2,
                                         "script_request_params": {"text": "in-process"}})
    stack.wait_job(job_id)
    assert stack.lead(2)["attributes"]["echo"] == "in-process"
    assert "sandbox:" not in worker.tail(400)


def test_a_missing_sandbox_binary_stops_the_worker_at_start_up(make_stack, tmp_path):
    stack = make_stack()
    out = subprocess.run([str(BIN / "botjobs-worker"), "--http-port=0", "--sandbox-path=/nonexistent/sandbox"],
                         env=stack.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "/nonexistent/sandbox" in out.stderr and "--sandbox-path" in out.stderr, out.stderr


def test_the_sandbox_children_go_away_with_the_worker(make_stack):
    """Retired and idle children exit with the worker; none is left behind, even one in a busy loop."""
    stack = make_stack(worker_args=["--script-timeout-ms=60000"])
    worker = stack.start_worker()
    stack.start_producer()
    add_trigger(stack, 300, "h_spin", "while (true) {}")
    schedule_when_known(stack, {"trigger_code": "h_spin", "lead_id": 3})

    def children():
        out = subprocess.run(["ps", "-o", "pid=,stat=,comm=", "--ppid", str(worker.p.pid)], capture_output=True,
                             text=True).stdout
        return [line.split() for line in out.splitlines() if "botjobs-sandbox" in line]
    wait_for(lambda: any(s.startswith("R") for _, s, _ in children()), 20, what="a child running the spin")
    pids = [int(p) for p, _, _ in children()]
    assert len(pids) >= 2, pids

    # A hard kill of the worker: the lifeline takes its children down, the spinning one too.
    worker.p.kill()
    worker.p.wait()
    worker.killed = True

    def gone():
        alive = []
        for p in pids:
            try:
                with open(f"/proc/{p}/stat") as f:
                    if f.read().split(") ", 1)[1][0] != "Z":
                        alive.append(p)
            except FileNotFoundError:
                pass
        return not alive
    wait_for(gone, 5, what=f"sandbox children {pids} to exit")
