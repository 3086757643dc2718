"""
The API contract in schemas/: the JSON Schemas are valid draft 2020-12, openapi.json is valid OpenAPI 3.1,
and on a corpus of request bodies (tests/contract/requests/*.jsonl) and Kafka envelopes
(tests/contract/envelopes/*.jsonl) the C rules (`botjobsctl validate [envelope]`, common/cm_job.c) and the
JSON Schemas give the same verdict.

Each corpus line is {"name", "body" (or "raw": the exact bytes), "valid", "errors"?, "known"?, "needs"?}:
- "valid" is the expected C verdict and "errors" the exact set of fields the C names (requests), so the corpus
  also pins the C rules down;
- "known" names one of KNOWN_LIMITS, the rules JSON Schema cannot express: for those cases the C must reject
  and the schema must accept (the schema never rejects what the server accepts), and the schema's description
  must mention the rule;
- "needs" names a C feature the case depends on (cancel_lead): if the C in this tree does not have it yet,
  those cases (and only those) are an expected failure.

Needs neither PostgreSQL nor Kafka.
"""
import json
import os
import pathlib
import random
import subprocess

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import BIN, ROOT, say

SCHEMAS = ROOT / "schemas"
CORPUS = ROOT / "tests" / "contract"

# The C rules JSON Schema cannot express. Key: the "known" of the corpus; value: (why, a phrase the schema's
# description must contain so that readers learn about it).
KNOWN_LIMITS = {
    "horizon": ("the 366-day horizon is counted from the current time (the message's timestamp for envelopes)",
                "366 days"),
    "dst-gap": ("a local time in a daylight-saving gap of the configured time zone does not exist",
                "daylight-saving gap"),
    "condition-compiles": ("condition_script_code must compile (MuJS, ES5)", "does not compile"),
    "params-size": ("script_request_params is at most 64 KiB as compact JSON", "64 KiB"),
    "tag-count": ("at most 100 tags after trimming and dropping empty and repeated ones", "100 distinct tags"),
    "utf8-bytes": ("codes and tags are limited in UTF-8 bytes, JSON Schema counts characters", "bytes"),
    "json-number-form": ("1.0 and 1e2 are integers to JSON Schema, reals to jansson", "1e3"),
    "json-duplicate-keys": ("jansson rejects duplicate keys (JSON_REJECT_DUPLICATES)", "duplicate keys"),
    "json-nul": ("jansson rejects \\u0000 in strings", "\\u0000"),
    "json-unpaired-surrogate": ("jansson rejects an unpaired UTF-16 surrogate", "surrogate"),
}
# Limits the corpus cannot exercise through botjobsctl validate, and why.
NOT_EXERCISED = {
    "dst-gap": "botjobsctl validate parses run_at in UTC, which has no daylight-saving gap (the producer's "
               "--timezone is not a setting of botjobsctl)",
}
# Descriptions that must name each limit, per schema (the envelope schema words some of them differently).
LIMIT_PHRASES_ENVELOPE = dict({k: v[1] for k, v in KNOWN_LIMITS.items()},
                              **{"horizon": "366 days after the message's Kafka timestamp",
                                 "params-size": "over 64 KiB", "tag-count": "100 distinct tags",
                                 "json-unpaired-surrogate": "unpaired surrogates"})


def registry():
    """Every schema under its file name, so that relative $refs between them resolve offline."""
    res = []
    for p in sorted(SCHEMAS.glob("*.json")):
        res.append((p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT202012)))
    return Registry().with_resources(res)


REGISTRY = registry()


def validator(ref):
    """A validator for a schema file or a fragment of one ("answers.schema.json#/$defs/job")."""
    return Draft202012Validator({"$ref": ref}, registry=REGISTRY)


def load_corpus(kind):
    cases = []
    for path in sorted((CORPUS / kind).glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            c = json.loads(line)
            c["where"] = f"{path.name}:{n}"
            c["text"] = c["raw"] if "raw" in c else json.dumps(c["body"])
            c["doc"] = json.loads(c["raw"]) if "raw" in c else c["body"]
            cases.append(c)
    return cases


def c_verdict(text, what="request"):
    out = subprocess.run([str(BIN / "botjobsctl"), "validate", what], input=text.encode(), capture_output=True)
    v = json.loads(out.stdout)
    assert out.returncode == (0 if v["valid"] else 1), f"validate's exit status disagrees with {v}"
    return v


def c_supports(feature):
    """C features that corpus cases may need, probed on this tree's botjobsctl."""
    if feature == "cancel_lead":
        v = c_verdict(json.dumps({"v": 1, "type": "cancel_lead", "bot_id": 1, "lead_id": 1}), "envelope")
        return v["valid"] or "cancel_lead" in v.get("reason", "")
    raise AssertionError(f"unknown feature {feature}")


def check_corpus(cases, schema_ref, what):
    """Checks each case; returns the problems (empty when all agree) and a summary line."""
    v = validator(schema_ref)
    problems, agree, known = [], 0, 0
    for c in cases:
        cv = c_verdict(c["text"], what)
        sv = v.is_valid(c["doc"])
        label = f"{c['where']} {c['name']}: C {'valid' if cv['valid'] else 'invalid'} " \
                f"{cv.get('errors', cv.get('reason', ''))}, schema {'valid' if sv else 'invalid'}"
        if cv["valid"] != c["valid"]:
            problems.append(f"{label}; the corpus expects C {'valid' if c['valid'] else 'invalid'}")
            continue
        if what == "request" and not cv["valid"] and "errors" in c and set(cv["errors"]) != set(c["errors"]):
            problems.append(f"{label}; the corpus expects errors on {sorted(c['errors'])}")
            continue
        if "known" in c:
            if c["known"] not in KNOWN_LIMITS:
                problems.append(f"{label}; unknown limit {c['known']!r}")
            elif cv["valid"] or not sv:
                problems.append(f"{label}; a known limit ({c['known']}) must be C invalid and schema valid")
            else:
                known += 1
            continue
        if cv["valid"] != sv:
            problems.append(label)
        else:
            agree += 1
    summary = (f"contract: {len(cases)} {what} cases: {agree} agree, {known} known limits "
               f"(C stricter, documented), {len(problems)} problems")
    return problems, summary


# ---------------------------------------------------------------------------------------------------------
def test_every_schema_is_valid_draft_2020_12():
    files = sorted(SCHEMAS.glob("*.schema.json"))
    names = {p.name for p in files}
    assert names == {"schedule-request.schema.json", "job-envelope.schema.json", "outbound-message.schema.json",
                     "job-event.schema.json", "deadletter.schema.json", "answers.schema.json"}, names
    for p in files:
        doc = json.loads(p.read_text())
        assert doc.get("$schema") == "https://json-schema.org/draft/2020-12/schema", p.name
        Draft202012Validator.check_schema(doc)
        # Every $ref resolves (a validator only follows the refs an instance reaches, so walk them all).
        walk_refs(doc, p.name)


def walk_refs(node, base):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = ref if not ref.startswith("#") else base + ref
            REGISTRY.resolver(base_uri=base).lookup(target)
        for v in node.values():
            walk_refs(v, base)
    elif isinstance(node, list):
        for v in node:
            walk_refs(v, base)


def test_openapi_document_is_valid_openapi_3_1():
    spec, base = read_from_filename(str(SCHEMAS / "openapi.json"))
    assert spec["openapi"].startswith("3.1."), spec["openapi"]
    validate_openapi(spec, base_uri=base)  # resolves the relative $refs to the schema files too
    walk_refs(spec, "openapi.json")


def test_openapi_lists_every_endpoint():
    paths = json.loads((SCHEMAS / "openapi.json").read_text())["paths"]
    want = {
        ("post", "/bots/{botId}/jobs/schedule", ("202", "400", "401", "403", "404", "413", "415", "422", "429", "503")),
        ("get", "/bots/{botId}/jobs/{jobId}", ("200", "401", "403", "404", "429", "503")),
        ("get", "/bots/{botId}/jobs", ("200", "401", "403", "404", "422", "429", "503")),
        ("delete", "/bots/{botId}/jobs/{jobId}", ("202", "401", "403", "404", "409", "429", "503")),
        ("delete", "/bots/{botId}/leads/{leadId}/jobs", ("202", "401", "403", "404", "429", "503")),
    }
    for method, path, codes in want:
        for prefix in ("/api/v1", ""):
            op = paths[prefix + path][method]
            assert set(codes) <= set(op["responses"]), (prefix + path, set(codes) - set(op["responses"]))
            assert {"bearer": []} in op["security"] and {"authentication": []} in op["security"]
    for path in ("/api/openapi.json", "/api/docs", "/api/docs/{file}", "/healthz", "/readyz", "/metrics"):
        assert paths[path]["get"]["security"] == [], path
    sched = paths["/api/v1/bots/{botId}/jobs/schedule"]["post"]
    params = json.dumps(sched["parameters"])
    assert "IdempotencyKey" in params
    spec = json.loads((SCHEMAS / "openapi.json").read_text())
    for code in ("429", "503"):
        r = sched["responses"][code]
        r = spec["components"]["responses"][r["$ref"].rsplit("/", 1)[1]] if "$ref" in r else r
        assert "Retry-After" in r["headers"], code
    auth = spec["components"]["securitySchemes"]
    assert auth["bearer"] == {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <token>"}
    assert auth["authentication"]["in"] == "header" and auth["authentication"]["name"] == "Authentication"


def test_request_corpus_c_and_schema_agree():
    cases = load_corpus("requests")
    assert len(cases) >= 150, len(cases)
    problems, summary = check_corpus(cases, "schedule-request.schema.json", "request")
    say(summary)
    assert not problems, f"{len(problems)} disagreement(s):\n" + "\n".join(problems)


# Values for the randomized check, (valid, invalid) per kind; none in a known limit (no future run_at, no
# condition that fails to compile, no reals, no non-ASCII text near a length limit).
POOLS = {
    "id": ([1, "1", "007", 42, 9223372036854775807, "9223372036854775807", None],
           ["9223372036854775808", 0, -1, "0", "x", "", " 1", "1\n", True, [], {}]),
    "code": (["a", "demo_echo", "c" * 255, None], ["c" * 256, "", 5, True, ["a"]]),
    "run_at": (["2026-01-21 18:00:00", "2024-02-29T00:00:00Z", "2020-01-01t00:00:00.5+03:00", None],
               ["2025-02-29 00:00:00", "2026-01-21 18:00", "2026-01-21 18:00:00+24:00", "tomorrow", "", 5]),
    "run_after_sec": ([0, "30", 31622400, "031622400", None], [31622401, "31622401", -1, "x", True]),
    "is_periodic": ([True, False, 1, 0, "true", "false", "1", "0", None], ["yes", 2]),
    "repeat_interval_sec": ([10, "10", 60, 31622400, None, 9, "9", 0, 31622401],
                            ["31622401x", -1, "x", "9223372036854775808"]),
    "condition_script_code": (["", "return true;", "return lead.getAttr('a') == 1;", None], [5, {}]),
    "script_request_params": ([{}, {"a": [1, {"b": None}]}, None], [[], "x", 5]),
    "tag": ([" a", "b ", "", "t" * 100, "ok", "é", "\u007f"], ["t" * 101, "a\tb", "x,y"]),
}
FIELDS = {"script_id": "id", "trigger_id": "id", "broadcast_id": "id", "lead_id": "id", "ticket_id": "id",
          "script_code": "code", "trigger_code": "code", "broadcast_code": "code", "run_at": "run_at",
          "run_after_sec": "run_after_sec", "is_periodic": "is_periodic", "repeat_interval_sec": "repeat_interval_sec",
          "condition_script_code": "condition_script_code", "script_request_params": "script_request_params",
          "add_tags": "tags", "remove_tags": "tags"}


def pick(rnd, kind):
    good, bad = POOLS[kind]
    return rnd.choice(bad if rnd.random() < 0.12 else good)


def random_body(rnd):
    body = {}
    for field, kind in FIELDS.items():
        if rnd.random() > (0.5 if field in ("lead_id", "trigger_code", "is_periodic", "repeat_interval_sec") else 0.15):
            continue
        if kind == "tags":
            tags = [pick(rnd, "tag") for _ in range(rnd.randint(0, 3))]
            body[field] = rnd.choice([",".join(tags), tags, tags, None, 7])
        else:
            body[field] = pick(rnd, kind)
    if rnd.random() < 0.03:
        body["trigger_cod"] = "x"
    return body


def test_random_requests_c_and_schema_agree():
    """Random combinations of valid and invalid field values (fixed seed; BOTJOBS_CONTRACT_RANDOM=n,seed)."""
    n, seed = (int(x) for x in os.environ.get("BOTJOBS_CONTRACT_RANDOM", "600,1").split(","))
    rnd, v = random.Random(seed), validator("schedule-request.schema.json")
    bad, valid = [], 0
    for _ in range(n):
        body = random_body(rnd)
        cv, sv = c_verdict(json.dumps(body))["valid"], v.is_valid(body)
        valid += cv
        if cv != sv:
            bad.append(f"{json.dumps(body)}: C {cv}, schema {sv}")
    say(f"contract: {n} random requests (seed {seed}): {n - len(bad)} agree ({valid} valid), {len(bad)} disagree")
    assert valid > n // 10, "too few valid bodies to mean anything"
    assert not bad, "\n".join(bad[:20])


def test_large_requests_c_and_schema_agree():
    """Bodies too large to keep in the corpus files: the 64 KiB limits on params and condition."""
    v = validator("schedule-request.schema.json")
    pad = 65536 - len(json.dumps({"p": ""}, separators=(",", ":")))
    cases = [
        ("params exactly 64 KiB", {"trigger_code": "t", "script_request_params": {"p": "x" * pad}}, True, None),
        ("params 64 KiB + 1", {"trigger_code": "t", "script_request_params": {"p": "x" * (pad + 1)}}, False,
         "params-size"),
        ("condition exactly 64 KiB", {"trigger_code": "t", "condition_script_code": "return true;" + " " * 65524},
         True, None),
        ("condition 64 KiB + 1", {"trigger_code": "t", "condition_script_code": "return true;" + " " * 65525},
         False, None),
    ]
    for name, body, valid, known in cases:
        cv, sv = c_verdict(json.dumps(body))["valid"], v.is_valid(body)
        assert cv == valid, f"{name}: C says {cv}"
        assert sv == (True if known else valid), f"{name}: schema says {sv}"


def test_corpus_covers_every_field_and_every_known_limit():
    cases = load_corpus("requests")
    fields = json.loads((SCHEMAS / "schedule-request.schema.json").read_text())["properties"]
    for f in fields:
        assert any(c["valid"] and isinstance(c["doc"], dict) and c["doc"].get(f) is not None for c in cases), \
            f"no valid case gives {f}"
        assert any(not c["valid"] and "known" not in c and f in c.get("errors", []) for c in cases), \
            f"no invalid case for {f}"
    # params-size is exercised by test_large_requests_c_and_schema_agree (its bodies are too large for the corpus).
    used = {c["known"] for c in cases + load_corpus("envelopes") if "known" in c} | {"params-size"}
    assert used | set(NOT_EXERCISED) == set(KNOWN_LIMITS), set(KNOWN_LIMITS) - used - set(NOT_EXERCISED)
    for c in cases:
        if "known" in c:
            assert c["known"] not in NOT_EXERCISED, c["name"]


@pytest.mark.parametrize("name,phrases", [("schedule-request.schema.json", {k: v[1] for k, v in KNOWN_LIMITS.items()}),
                                          ("job-envelope.schema.json", LIMIT_PHRASES_ENVELOPE)])
def test_schema_descriptions_name_every_known_limit(name, phrases):
    desc = json.loads((SCHEMAS / name).read_text())["description"]
    missing = [k for k, phrase in phrases.items() if phrase not in desc]
    assert not missing, f"{name}: the description does not mention {missing}"


def test_envelope_corpus_c_and_schema_agree():
    cases = [c for c in load_corpus("envelopes") if "needs" not in c]
    assert len(cases) >= 40, len(cases)
    problems, summary = check_corpus(cases, "job-envelope.schema.json", "envelope")
    say(summary)
    assert not problems, f"{len(problems)} disagreement(s):\n" + "\n".join(problems)


def test_cancel_lead_envelopes_c_and_schema_agree():
    """cancel_lead is being added to the C: until it is there, these cases are expected to fail."""
    cases = [c for c in load_corpus("envelopes") if c.get("needs") == "cancel_lead"]
    assert len(cases) >= 5, len(cases)
    if not c_supports("cancel_lead"):
        pytest.xfail(f"this tree's C does not know cancel_lead yet ({len(cases)} cases wait for it)")
    problems, summary = check_corpus(cases, "job-envelope.schema.json", "envelope")
    say(summary)
    assert not problems, f"{len(problems)} disagreement(s):\n" + "\n".join(problems)


def test_examples_in_the_documents_are_valid():
    """Every example the docs show is valid for its schema, and request examples pass the C rules too."""
    req = validator("schedule-request.schema.json")
    for ex in json.loads((SCHEMAS / "schedule-request.schema.json").read_text())["examples"]:
        assert req.is_valid(ex) and c_verdict(json.dumps(ex))["valid"], ex
    for name in ("job-envelope", "outbound-message", "job-event", "deadletter"):
        v = validator(f"{name}.schema.json")
        for ex in json.loads((SCHEMAS / f"{name}.schema.json").read_text())["examples"]:
            v.validate(ex)
            if name == "job-envelope":
                assert c_verdict(json.dumps(ex), "envelope")["valid"] or ex["type"] == "cancel_lead", ex
    spec = json.loads((SCHEMAS / "openapi.json").read_text())
    n = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for ex in body["examples"].values():
                    assert req.is_valid(ex["value"]) and c_verdict(json.dumps(ex["value"]))["valid"], (path, ex)
                    n += 1
            for code, resp in op["responses"].items():
                if "$ref" in resp:
                    resp = spec["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
                media = resp.get("content", {}).get("application/json")
                if not media or "$ref" not in media.get("schema", {}):
                    continue
                v = validator(media["schema"]["$ref"])
                examples = [media["example"]] if "example" in media else []
                examples += [e["value"] for e in media.get("examples", {}).values()]
                # Without one, Swagger UI shows the schema's first example (the 422 one under a 413).
                assert examples, f"{method} {path} {code}: no example"
                for ex in examples:
                    v.validate(ex)
                    n += 1
    assert n >= 20, n
