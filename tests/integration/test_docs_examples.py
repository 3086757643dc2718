"""
Every example of docs/writing-bot-code.md works: the ```js blocks and the dialog scripts (```json
arrays) compile with `botjobsctl bot check`, and then run in a real worker for the demo bot's lead 1
(with a ticket and request parameters) and finish "done". The manifest example is accepted as it is.
A block after <!-- does not compile --> must be rejected, with the ES5 hint.
"""
import json
import re
import subprocess

from conftest import BIN, ROOT, wait_for

DOC = ROOT / "docs" / "writing-bot-code.md"
PARAMS = {"text": "hello", "order_id": 42, "amount": "19.90"}


def blocks():
    """(kind, marker, code, line) for every ```js / ```json block; marker is the HTML comment before it."""
    text = DOC.read_text()
    out = []
    for m in re.finditer(r"(?:<!--[ \t]*([^\n]*?)[ \t]*-->\n)?```(js|json)\n(.*?)```", text, re.S):
        line = text.count("\n", 0, m.start(2)) + 1
        out.append((m.group(2), (m.group(1) or "").split(":")[0], m.group(3), line))
    return out


def examples():
    js = [(code, line) for kind, marker, code, line in blocks() if kind == "js" and marker != "does not compile"]
    scripts = [(code, line) for kind, marker, code, line in blocks() if kind == "json" and marker != "manifest"]
    return js, scripts


def write_examples_bot(d):
    """Bot 1 of Demo Inc (the demo bot): trigger 100+i per JavaScript example, script 200+i per dialog script."""
    js, scripts = examples()
    (d / "js").mkdir(parents=True)
    triggers, script_items = [], []
    for i, (code, line) in enumerate(js):
        (d / "js" / f"line{line}.js").write_text(code)
        triggers.append({"id": 100 + i, "code": f"doc_line{line}", "file": f"js/line{line}.js"})
    for i, (code, line) in enumerate(scripts):
        commands = json.loads(code)
        assert isinstance(commands, list), f"line {line}: a dialog script is a list of commands"
        script_items.append({"id": 200 + i, "code": f"doc_script_line{line}", "commands": commands})
    (d / "manifest.json").write_text(json.dumps({"business": "Demo Inc", "bot": {"id": 1, "name": "demo"},
                                                 "triggers": triggers, "scripts": script_items}))
    return triggers, script_items


def test_the_examples_compile_and_the_es2015_one_does_not(tmp_path):
    js, scripts = examples()
    assert len(js) >= 12 and len(scripts) >= 7, (len(js), len(scripts))  # the regex found them all
    d = tmp_path / "examples"
    write_examples_bot(d)
    out = subprocess.run([str(BIN / "botjobsctl"), "bot", "check", str(d)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    bad = [(code, line) for kind, marker, code, line in blocks() if marker == "does not compile"]
    assert bad, "the doc shows what ES2015 code gets"
    for code, line in bad:
        b = tmp_path / f"bad{line}"
        b.mkdir()
        (b / "manifest.json").write_text(json.dumps({"business": "x", "bot": {"id": 1},
                                                     "triggers": [{"id": 1, "code": "x", "file": "x.js"}]}))
        (b / "x.js").write_text(code)
        out = subprocess.run([str(BIN / "botjobsctl"), "bot", "check", str(b)], capture_output=True, text=True)
        assert out.returncode == 1 and f"{b}/x.js:1: SyntaxError" in out.stderr, f"line {line}: {out.stderr}"
        assert "MuJS runs ES5" in out.stderr, out.stderr


def test_the_manifest_example_is_accepted(tmp_path):
    manifests = [code for kind, marker, code, line in blocks() if marker == "manifest"]
    assert len(manifests) == 1
    m = json.loads(manifests[0])
    d = tmp_path / "shop-bot"
    d.mkdir()
    (d / "manifest.json").write_text(manifests[0])
    for item in m["triggers"] + m.get("broadcasts", []):
        if "file" in item:
            (d / item["file"]).parent.mkdir(parents=True, exist_ok=True)
            (d / item["file"]).write_text("return 1;\n")
    for item in m["scripts"]:
        (d / item["file"]).parent.mkdir(parents=True, exist_ok=True)
        (d / item["file"]).write_text('[{"type": "stop"}]')
    out = subprocess.run([str(BIN / "botjobsctl"), "bot", "check", str(d)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_examples_run_in_a_worker(stack, tmp_path):
    d = tmp_path / "examples"
    triggers, scripts = write_examples_bot(d)
    out = subprocess.run([str(BIN / "botjobsctl"), "bot", "apply", str(d)], env=stack.env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    stack.sql("INSERT INTO tickets (bot_id, id, lead_id, data) VALUES (1, 1, 1, '{\"status\": \"open\"}')")

    def schedule(body):
        def accepted():
            r = stack.schedule(body)
            return r.json()["job_id"] if r.status_code == 202 else None  # 404 until the catalog has the bot's code
        return wait_for(accepted, 15, interval=0.2, what=f"the producer to accept {body}")

    jobs = []
    for t in triggers:
        jobs.append((t["file"], schedule({"trigger_code": t["code"], "lead_id": 1, "ticket_id": 1,
                                          "script_request_params": PARAMS})))
    for s in scripts:
        jobs.append((s["code"], schedule({"script_code": s["code"], "lead_id": 1, "ticket_id": 1,
                                          "script_request_params": PARAMS})))
    failed = []
    for what, job_id in jobs:
        j = stack.wait_job(job_id, ("done", "failed", "skipped", "cancelled"), timeout=30)
        if j["state"] != "done":
            failed.append(f"{what} (docs/writing-bot-code.md): {j['state']}: {j['last_error']}")
    assert not failed, "\n".join(failed)
