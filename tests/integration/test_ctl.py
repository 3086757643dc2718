"""
botjobsctl on a real PostgreSQL (and Kafka for job cancel): bot apply (compile errors change nothing,
all or nothing, versions, --prune, --dry-run), lead import (100k JSON lines, CSV with a bad line),
job cancel through Kafka, every --json output, every command's --help.
"""
import hashlib
import json
import re
import subprocess
import time

from conftest import BIN, wait_for, say

TABLES = ("businesses", "bots", "triggers", "scripts", "broadcasts", "bot_versions", "lead_statuses", "leads",
          "bot_attributes")


def run(s, *args, stdin=None):
    return subprocess.run([str(BIN / "botjobsctl"), *args], env=s.env, capture_output=True, text=True, input=stdin)


def ok(s, *args):
    out = run(s, *args)
    assert out.returncode == 0, f"botjobsctl {' '.join(args)}: exit {out.returncode}\n{out.stderr}"
    return out


def as_json(s, *args):
    return json.loads(ok(s, *args, "--json").stdout)


def snapshot(s):
    """Every row of the tables bot apply may touch, timestamps included: equal snapshots = nothing written."""
    return {t: s.sql(f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES}


def write_bot(d, triggers, scripts=(), broadcasts=(), files=None, extra=None):
    """A bot folder: bot 7 of "Ctl Co"; files maps relative paths to their text."""
    d.mkdir(exist_ok=True)
    manifest = {"business": "Ctl Co", "bot": {"id": 7, "name": "ctl"}, "triggers": list(triggers),
                "scripts": list(scripts), "broadcasts": list(broadcasts)}
    manifest.update(extra or {})
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for rel, text in (files or {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


GOOD_FILES = {"triggers/a.js": "// a\nvar n = request.getParam('n', 1);\nreturn n + 1;\n",
              "triggers/b.js": "lead.addTag('b');\n",
              "scripts/welcome.json": json.dumps([{"type": "send_text", "text": "Hi {{ $name }}"},
                                                  {"type": "run_js", "code": "lead.setAttr('step', '1');",
                                                   "condition": "return !lead.isAttrExist('step');"}])}
GOOD_TRIGGERS = [{"id": 1, "code": "a", "file": "triggers/a.js", "script_id": 3},
                 {"id": 2, "code": "b", "file": "triggers/b.js", "condition": "return leadId > 0;"}]
GOOD_SCRIPTS = [{"id": 3, "code": "welcome", "file": "scripts/welcome.json"}]
GOOD_BROADCASTS = [{"id": 4, "code": "promo", "script_id": 3, "condition": "return lead.isTagExist('vip');"}]


def good_bot(d, **kw):
    return write_bot(d, GOOD_TRIGGERS, GOOD_SCRIPTS, GOOD_BROADCASTS, GOOD_FILES, **kw)


def versions(s):
    rows = s.sql("SELECT 'trigger', id, version FROM triggers WHERE bot_id = 7 UNION ALL"
                 " SELECT 'script', id, version FROM scripts WHERE bot_id = 7 UNION ALL"
                 " SELECT 'broadcast', id, version FROM broadcasts WHERE bot_id = 7")
    return {(k, i): v for k, i, v in rows}


def test_apply_with_a_syntax_error_names_file_and_line_and_changes_nothing(make_stack, tmp_path):
    s = make_stack()
    d = good_bot(tmp_path / "bot")
    ok(s, "bot", "apply", str(d))
    before = snapshot(s)
    # a valid change, a new trigger, and three pieces of ES2015 syntax: none of it may land
    write_bot(d, GOOD_TRIGGERS + [{"id": 5, "code": "arrow", "body": "var f = (x) => x;\nreturn f(1);"},
                                  {"id": 6, "code": "tpl", "body": "return 1;", "condition": "return `x`;"}],
              GOOD_SCRIPTS, GOOD_BROADCASTS,
              dict(GOOD_FILES, **{"triggers/a.js": "var n = 1;\nreturn n + 2;\n",
                                  "triggers/b.js": "// b\nlet tag = 'b';\nlead.addTag(tag);\n"}))
    out = run(s, "bot", "apply", str(d))
    assert out.returncode == 1
    assert f"{d}/triggers/b.js:2: SyntaxError" in out.stderr and "use var" in out.stderr, out.stderr
    assert "trigger 5 'arrow' body, line 1: SyntaxError" in out.stderr and "use function" in out.stderr
    assert "trigger 6 'tpl' condition, line 1" in out.stderr and "string concatenation" in out.stderr
    assert "nothing was applied" in out.stderr
    assert snapshot(s) == before, "a folder that does not compile must change nothing"
    # `bot check` says the same without a database, and `check`/`load` are still there
    chk = run(s, "check", str(d), "--pg-uri=postgresql://nobody@127.0.0.1:1/none")
    assert chk.returncode == 1 and f"{d}/triggers/b.js:2:" in chk.stderr
    assert run(s, "load", str(d)).returncode == 1 and snapshot(s) == before

    # a failure inside the transaction (two lead statuses with one name) rolls back the targets too
    good_bot(d, extra={"lead_statuses": [{"id": 1, "name": "new"}, {"id": 2, "name": "new"}]})
    (d / "triggers/a.js").write_text("return 42;\n")
    out = run(s, "bot", "apply", str(d))
    assert out.returncode == 1 and "nothing was applied" in out.stderr, out.stderr
    assert "lead_statuses" in out.stderr or "duplicate key" in out.stderr, out.stderr
    assert snapshot(s) == before, "all or nothing"


def test_applying_twice_changes_nothing_the_second_time(make_stack, tmp_path):
    s = make_stack()
    d = good_bot(tmp_path / "bot", extra={"lead_statuses": [{"id": 1, "name": "new"}],
                                          "leads": [{"id": 1, "name": "Ann", "tags": ["seed"]}],
                                          "bot_attributes": {"greeting": "hi"}})
    first = as_json(s, "bot", "apply", str(d))
    assert first["changed"] and first["version"] == 1 and first["bot_created"]
    assert first["counts"] == {"added": 4, "changed": 0, "unchanged": 0, "removed": 0, "kept": 0}
    assert first["seed_leads_created"] == 1 and first["bot_attributes_created"] == 1
    before = snapshot(s)
    second = run(s, "bot", "apply", str(d))
    assert second.returncode == 0 and "nothing changed (version 1)" in second.stdout, second.stdout
    again = as_json(s, "bot", "apply", str(d))
    assert not again["changed"] and again["version"] == 1 and again["manifest_hash"] == first["manifest_hash"]
    assert again["counts"]["unchanged"] == 4
    assert snapshot(s) == before, "the second apply must not write a row (updated_at included)"


def test_a_changed_trigger_gets_the_next_version_and_the_manifest_is_recorded(make_stack, tmp_path):
    s = make_stack()
    d = good_bot(tmp_path / "bot")
    ok(s, "bot", "apply", str(d))
    assert set(versions(s).values()) == {1}
    (d / "triggers/a.js").write_text("// a, version two\nreturn 2;\n")
    out = ok(s, "bot", "apply", str(d))
    assert re.search(r"changed\s+trigger 1 'a' \(body\): version 1 -> 2", out.stdout), out.stdout
    assert versions(s) == {("trigger", 1): 2, ("trigger", 2): 1, ("script", 3): 1, ("broadcast", 4): 1}
    # the condition of b and the commands of the script count too; so does a code change
    write_bot(d, [GOOD_TRIGGERS[0], dict(GOOD_TRIGGERS[1], condition="return leadId > 1;", code="bee")],
              GOOD_SCRIPTS, GOOD_BROADCASTS,
              dict(GOOD_FILES, **{"triggers/a.js": "// a, version two\nreturn 2;\n",
                                  "scripts/welcome.json": json.dumps([{"type": "stop"}])}))
    rep = as_json(s, "bot", "apply", str(d))
    items = {(i["kind"], i["id"]): i for i in rep["items"]}
    assert items[("trigger", 2)]["fields"] == ["code", "condition"] and items[("trigger", 2)]["version"] == 2
    assert items[("script", 3)]["fields"] == ["commands"] and items[("script", 3)]["version"] == 2
    assert items[("trigger", 1)]["action"] == "unchanged" and items[("trigger", 1)]["version"] == 2
    assert rep["version"] == 3
    rows = s.sql("SELECT version, manifest, manifest_hash, changes FROM bot_versions WHERE bot_id = 7 ORDER BY version")
    assert [r[0] for r in rows] == [1, 2, 3]
    manifest, digest, changes = rows[2][1], rows[2][2], rows[2][3]
    assert digest == rep["manifest_hash"]
    assert digest == hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False).encode()).hexdigest()
    assert [t["body"] for t in manifest["triggers"]][0] == "// a, version two\nreturn 2;\n", "code is inlined"
    assert changes["counts"]["changed"] == 2
    assert s.sql("SELECT code FROM triggers WHERE bot_id = 7 AND id = 2") == [("bee",)]
    bots = {b["id"]: b for b in as_json(s, "bot", "list")}
    assert bots[7]["version"] == 3 and bots[7]["triggers"] == 2


def test_prune_dry_run_and_kept_targets(make_stack, tmp_path):
    s = make_stack()
    d = good_bot(tmp_path / "bot")
    ok(s, "bot", "apply", str(d))
    write_bot(d, GOOD_TRIGGERS[:1], GOOD_SCRIPTS, [], GOOD_FILES)
    out = ok(s, "bot", "apply", str(d))
    assert "kept       trigger 2 'b': not in the manifest" in out.stdout, out.stdout
    assert "kept       broadcast 4 'promo'" in out.stdout
    assert ("trigger", 2) in versions(s) and ("broadcast", 4) in versions(s)
    before = snapshot(s)
    dry = as_json(s, "bot", "apply", str(d), "--prune", "--dry-run")
    assert dry["dry_run"] and dry["counts"]["removed"] == 2
    assert snapshot(s) == before, "--dry-run changes nothing"
    out = ok(s, "bot", "apply", "--prune", str(d))
    assert "removed    trigger 2 'b'" in out.stdout and "removed    broadcast 4 'promo'" in out.stdout
    assert set(versions(s)) == {("trigger", 1), ("script", 3)}
    # a new trigger that wants the code of a stored one the manifest no longer lists needs --prune
    ok(s, "bot", "apply", str(good_bot(d)))
    write_bot(d, [GOOD_TRIGGERS[0], {"id": 9, "code": "b", "body": "return 9;"}], GOOD_SCRIPTS, [], GOOD_FILES)
    before = snapshot(s)
    out = run(s, "bot", "apply", str(d))
    assert out.returncode == 1 and "the code 'b' of trigger 9 is held by trigger 2" in out.stderr, out.stderr
    assert snapshot(s) == before
    ok(s, "bot", "apply", str(d), "--prune")
    assert s.sql("SELECT id FROM triggers WHERE bot_id = 7 AND code = 'b'") == [(9,)]


def test_lead_import_of_100k_json_lines(make_stack, tmp_path):
    s = make_stack()
    path = tmp_path / "leads.jsonl"
    with path.open("w") as f:
        for i in range(1, 100001):
            f.write(json.dumps({"id": i, "name": f"Lead {i}", "channel": "telegram",
                                "attributes": {"n": str(i), "plan": "free" if i % 2 else "paid"},
                                "tags": ["imported", f"g{i % 10}"]}) + "\n")
    started = time.monotonic()
    out = run(s, "lead", "import", "1", str(path), "--json")
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    say(f"lead import: 100000 JSON lines ({path.stat().st_size / 1e6:.1f} MB) in {took:.2f} s "
        f"(botjobsctl's own clock: {rep['seconds']:.2f} s)")
    assert rep["imported"] == 100000 and rep["bad"] == 0 and rep["format"] == "jsonl"
    assert rep["inserted"] == 100000 - 3 and rep["updated"] == 3, "the demo's leads 1-3 are updated"
    assert s.sql("SELECT count(*) FROM leads WHERE bot_id = 1")[0][0] == 100000
    # the demo's Alice keeps what the import does not give, and gets what it does
    alice = s.lead(1)
    assert alice["attributes"] == {"lang": "en", "n": "1", "plan": "free"}
    assert alice["tags"] == ["demo", "imported", "g1"]
    assert s.sql("SELECT name, channel FROM leads WHERE bot_id = 1 AND id = 77777") == [("Lead 77777", "telegram")]
    assert took < 60, f"100k leads took {took:.1f} s"


def test_lead_import_of_a_csv_with_a_bad_line(make_stack, tmp_path):
    s = make_stack()
    path = tmp_path / "leads.csv"
    path.write_bytes(
        b'\xef\xbb\xbfid,name,channel,tags,city,"zip code"\r\n'
        b'1,,,vip|new,Oslo,0150\r\n'          # line 2: Alice, existing: name and channel stay
        b'10,"Doe, J",whatsapp,a,Bergen,\r\n'  # line 3
        b'eleven,Eleven,,,,\r\n'               # line 4: bad id
        b'12,"Multi\r\nline",,,,\r\n'          # lines 5-6: a quoted line break
        b'13,Thirteen,,,,,extra\r\n'           # line 7: one field too many
        b'14,Fourteen,,,Tromso,9000\r\n')      # line 8
    out = run(s, "lead", "import", "1", str(path))
    assert out.returncode == 1, "a bad line makes the exit status 1"
    assert f"{path}:4: id: 'eleven' is not a positive integer" in out.stderr, out.stderr
    assert f"{path}:7: 7 field(s), but the header has 6 column(s)" in out.stderr, out.stderr
    assert "4 lead(s) into bot 1 (3 new, 1 updated)" in out.stdout and "2 bad line(s)" in out.stdout, out.stdout
    rows = dict(s.sql("SELECT id, name FROM leads WHERE bot_id = 1 AND id >= 10"))
    assert rows == {10: "Doe, J", 12: "Multi\r\nline", 14: "Fourteen"}
    alice = s.sql("SELECT name, channel, attributes, tags FROM leads WHERE bot_id = 1 AND id = 1")[0]
    assert alice == ("Alice", "telegram", {"lang": "en", "city": "Oslo", "zip code": "0150"}, ["demo", "vip", "new"])
    assert s.sql("SELECT channel, attributes FROM leads WHERE bot_id = 1 AND id = 14") == \
        [("api", {"city": "Tromso", "zip code": "9000"})]
    # --json lists the bad lines; an unknown bot imports nothing
    rep = json.loads(run(s, "lead", "import", "1", str(path), "--json").stdout)
    assert [b["line"] for b in rep["bad_lines"]] == [4, 7] and rep["updated"] == 4 and rep["inserted"] == 0
    out = run(s, "lead", "import", "999", str(path))
    assert out.returncode == 1 and "there is no bot 999" in out.stderr
    # stdin works too, and a file that is all good exits 0
    out = run(s, "lead", "import", "1", "-", stdin='{"id": 20, "tags": "x,y"}\n{"id": 21}\n')
    assert out.returncode == 0 and "2 lead(s) into bot 1 (2 new, 0 updated)" in out.stdout, out.stdout + out.stderr


def test_job_cancel_of_a_scheduled_job(stack):
    r = stack.schedule({"trigger_code": "demo_echo", "lead_id": 2, "run_after_sec": 4,
                        "script_request_params": {"text": "never"}})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    wait_for(lambda: stack.job(job_id), 10, what="the job to be stored")
    out = run(stack, "job", "cancel", "1", job_id, "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["status"] == "cancel_requested" and rep["lead_id"] == 2 and rep["topic"] == stack.topic("jobs")
    stack.wait_job(job_id, ("cancelled",), timeout=10)
    time.sleep(5)  # past the due time: it must not run
    assert stack.job(job_id)["runs"] == 0 and stack.job(job_id)["state"] == "cancelled"
    assert stack.sql("SELECT count(*) FROM job_runs WHERE job_id = %s AND outcome = 'done'", job_id)[0][0] == 0
    assert "echo" not in stack.lead(2)["attributes"]
    cancels = [m for m in stack.messages("jobs", min_count=2) if json.loads(m.value()).get("type") == "cancel"]
    assert len(cancels) == 1 and cancels[0].key() == b"1:2", "keyed like the job, so it follows it in its partition"
    assert json.loads(cancels[0].value())["job_id"] == job_id
    again = run(stack, "job", "cancel", "1", job_id)
    assert again.returncode == 1 and "already cancelled" in again.stderr
    other = run(stack, "job", "cancel", "2", job_id)
    assert other.returncode == 1 and "not found in bot 2" in other.stderr
    shown = as_json(stack, "job", "show", job_id)
    assert shown["status"] == "cancelled" and shown["runs"] == 0
    assert "status" in ok(stack, "job", "show", job_id).stdout


def test_json_outputs_parse_and_text_outputs_are_tables(make_stack, tmp_path):
    s = make_stack()
    created = as_json(s, "business", "create", "Json Co")
    assert created["name"] == "Json Co" and created["id"] > 0
    assert run(s, "business", "create", "Json Co").returncode == 1, "a second business of that name"
    bot = as_json(s, "bot", "create", "50", "fifty", "--business", "Json Co")
    assert bot == {"id": 50, "name": "fifty", "business_id": created["id"]}
    assert run(s, "bot", "create", "50", "again", "--business", "Json Co").returncode == 1
    assert run(s, "bot", "create", "51", "x").returncode == 2, "--business is required"
    businesses = {b["name"]: b for b in as_json(s, "business", "list")}
    assert businesses["Json Co"]["bots"] == 1 and businesses["Demo Inc"]["active_tokens"] == 1
    assert [b["id"] for b in as_json(s, "bot", "list", "--business", "Json Co")] == [50]
    assert {b["id"] for b in as_json(s, "bot", "list")} == {1, 50}
    tokens = as_json(s, "token", "list", "Demo Inc")
    assert len(tokens) == 1 and tokens[0]["status"] == "active" and tokens[0]["business"] == "Demo Inc"
    assert run(s, "token", "list", "No Such Co").returncode == 1
    leads = as_json(s, "lead", "list", "1")
    assert [lead["id"] for lead in leads] == [1, 2, 3] and leads[1]["tags"] == ["demo", "vip"]
    assert [lead["id"] for lead in as_json(s, "lead", "list", "1", "--tag", "vip")] == [2]
    assert len(as_json(s, "lead", "list", "1", "--limit", "2")) == 2
    lead = as_json(s, "lead", "show", "1", "2")
    assert lead["name"] == "Bob" and lead["attributes"] == {"lang": "de"} and lead["pending_jobs"] == 0
    assert run(s, "lead", "show", "1", "99").returncode == 1
    s.sql("INSERT INTO jobs (job_id, bot_id, lead_id, target_kind, target_code, due_at, state) VALUES"
          " ('01900000-0000-7000-8000-000000000001', 1, 1, 'trigger', 'demo_echo', now() + interval '1 hour', 'scheduled'),"
          " ('01900000-0000-7000-8000-000000000002', 1, 2, 'trigger', 'demo_echo', now(), 'done')")
    jobs = as_json(s, "job", "list", "1")
    assert [j["job_id"][-1] for j in jobs] == ["2", "1"], "newest first"
    assert [j["lead_id"] for j in as_json(s, "job", "list", "1", "--status", "scheduled")] == [1]
    assert [j["status"] for j in as_json(s, "job", "list", "1", "--lead", "2")] == ["done"]
    assert run(s, "job", "list", "1", "--status", "nope").returncode == 2
    job = as_json(s, "job", "show", "01900000-0000-7000-8000-000000000001")
    assert job["target"] == {"kind": "trigger", "id": None, "code": "demo_echo"} and job["history"] == []
    assert as_json(s, "lead", "show", "1", "1")["pending_jobs"] == 1
    d = good_bot(tmp_path / "bot")
    assert as_json(s, "bot", "apply", str(d))["bot_id"] == 7
    # the text forms: a title line, then the rows
    assert ok(s, "business", "list").stdout.splitlines()[0].split() == ["ID", "NAME", "BOTS", "TOKENS", "CREATED"]
    lines = ok(s, "lead", "list", "1").stdout.splitlines()
    assert lines[0].startswith("ID") and "Bob" in lines[2] and "demo,vip" in lines[2]
    assert "TARGET" in ok(s, "job", "list", "1").stdout and "trigger demo_echo" in ok(s, "job", "list", "1").stdout
    assert ok(s, "token", "list").stdout.splitlines()[1].split()[1:3] == ["Demo", "Inc"]


def commands():
    """Every command the top-level help lists (their words)."""
    out = subprocess.run([str(BIN / "botjobsctl"), "--help"], capture_output=True, text=True, check=True).stdout
    section = out[out.index("Commands:"):out.index("Options")]
    words = []
    for line in section.splitlines()[1:]:
        m = re.match(r"^  ([a-z]+(?: [a-z]+)?)(?: [A-Z\[]|\s{2,}|$)", line)
        if m:
            words.append(m.group(1).split())
    return words


def test_every_command_has_its_own_help():
    cmds = commands()
    assert ["bot", "apply"] in cmds and ["lead", "import"] in cmds and ["job", "cancel"] in cmds and ["load"] in cmds
    assert len(cmds) >= 21, cmds
    for words in cmds:
        out = subprocess.run([str(BIN / "botjobsctl"), *words, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, f"{words} --help: {out.stderr}"
        assert "Usage: botjobsctl " in out.stdout and out.stdout.strip(), words
        if words not in (["load"], ["check"]):
            assert out.stdout.startswith("Usage: botjobsctl " + " ".join(words)), out.stdout[:200]
    for group in ("business", "bot", "token", "lead", "job"):
        out = subprocess.run([str(BIN / "botjobsctl"), group, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and f"  {group} " in out.stdout, out.stdout
    # options may come first; help wins over everything else
    out = subprocess.run([str(BIN / "botjobsctl"), "--json", "lead", "import", "-h"], capture_output=True, text=True)
    assert out.returncode == 0 and "JSON lines" in out.stdout
    load = subprocess.run([str(BIN / "botjobsctl"), "load", "--help"], capture_output=True, text=True).stdout
    assert "older name of `botjobsctl bot apply`" in load and "Usage: botjobsctl bot apply DIR" in load


def test_usage_errors_exit_2():
    for args, words in ((["bot", "apply"], "usage: botjobsctl bot apply DIR"),
                        (["bot"], "which one?"),
                        (["job", "list", "1", "--tag", "x"], "job list does not take --tag"),
                        (["lead", "import", "1", "f", "--prune"], "lead import does not take --prune"),
                        (["frobnicate"], "unknown command 'frobnicate'"),
                        (["job", "show", "not-a-uuid"], "not a job id"),
                        (["validate", "nonsense"], "request or envelope")):
        out = subprocess.run([str(BIN / "botjobsctl"), *args], capture_output=True, text=True)
        assert out.returncode == 2 and words in out.stderr, (args, out.returncode, out.stderr)
