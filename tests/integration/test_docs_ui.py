"""
The API documentation a running producer serves: /api/openapi.json is schemas/openapi.json byte for byte,
every file the page needs is served, and the page, rendered by a real headless Chromium with every
non-loopback host unreachable (so it works offline), shows the schedule operation with its request body.

Chromium comes from Debian (`BOTJOBS_DEPS_BROWSER=1 make deps`; CI installs it). Without it the browser
test is skipped, except in CI, where it fails. The producer finds build/docs by default (`make docs`;
`make integration` builds it first).
"""
import html.parser
import os
import re
import shutil
import subprocess

import pytest
import requests

from conftest import ROOT, say

DOCS = ROOT / "build" / "docs"
SCHEDULE = "/api/v1/bots/{botId}/jobs/schedule"


@pytest.fixture
def docs_stack(stack):
    if not (DOCS / "index.html").exists():
        pytest.fail(f"{DOCS} is missing: run make docs (make integration does)")
    return stack


def test_openapi_json_is_the_source_document(docs_stack):
    src = (ROOT / "schemas" / "openapi.json").read_bytes()
    for path in ("/api/openapi.json", "/api/docs/openapi.json"):
        r = requests.get(docs_stack.url + path, timeout=10)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        assert r.headers["Content-Type"] == "application/json", path
        assert r.content == src, f"{path} differs from schemas/openapi.json"


def test_every_file_of_the_page_is_served(docs_stack):
    for path in ("/api/docs", "/api/docs/"):
        r = requests.get(docs_stack.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), path
        assert r.content == (ROOT / "web" / "index.html").read_bytes(), path
    page = r.text
    assets = re.findall(r'(?:href|src)="(/api/docs/[^"]+)"', page)
    assert "/api/docs/swagger-ui-bundle.js" in assets and "/api/docs/swagger-ui.css" in assets, assets
    types = {".js": "application/javascript", ".css": "text/css", ".json": "application/json", ".png": "image/png"}
    for path in assets:
        r = requests.get(docs_stack.url + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["Content-Type"] == types[os.path.splitext(path)[1]], (path, r.headers["Content-Type"])
    # The JSON Schemas that openapi.json's relative $refs name, next to it under /api/docs/.
    for schema in sorted((ROOT / "schemas").glob("*.schema.json")):
        r = requests.get(f"{docs_stack.url}/api/docs/{schema.name}", timeout=10)
        assert r.status_code == 200 and r.content == schema.read_bytes(), schema.name
    # Only plain file names.
    assert requests.get(docs_stack.url + "/api/docs/..%2Fopenapi.json", timeout=10).status_code == 404
    assert requests.get(docs_stack.url + "/api/docs/no-such-file.js", timeout=10).status_code == 404


class _Text(html.parser.HTMLParser):
    """The visible text of a document (<wbr> and scripts dropped)."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(dom):
    p = _Text()
    p.feed(dom)
    return "".join(p.parts).replace("\u200b", "")


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (scripts/deps.sh installs it when CI is set)")
        pytest.skip("no chromium here: BOTJOBS_DEPS_BROWSER=1 make deps installs it")
    return exe


def dump_dom(exe, url, tmp_path):
    """The DOM after the page's scripts ran; non-loopback hosts cannot be reached, so nothing online helps."""
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-extensions", "--mute-audio", f"--user-data-dir={tmp_path / 'chromium'}",
            # Offline: no name resolves (but the producer's 127.0.0.1), and any other address goes to a dead proxy.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
            # Swagger UI renders client-side: let the page run for up to 20 s of virtual time.
            "--virtual-time-budget=20000", "--dump-dom", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"chromium exited {out.returncode}:\n{out.stderr[-2000:]}"
    return out.stdout


def test_the_page_renders_the_schedule_operation_offline(docs_stack, tmp_path):
    exe = chromium()
    # The deep link opens the schedule operation, so its request body and answers render too.
    url = docs_stack.url + "/api/docs#/Jobs/scheduleJob"
    for attempt in (1, 2):
        dom = dump_dom(exe, url, tmp_path / str(attempt))
        if f'data-path="{SCHEDULE}"' in dom:
            break
        say(f"docs ui: attempt {attempt}: the operation is not in the DOM yet ({len(dom)} bytes); trying again")
    text = visible_text(dom)
    assert f'data-path="{SCHEDULE}"' in dom, dom[-3000:]
    assert SCHEDULE in text
    assert "/bots/{botId}/jobs/schedule" in text.replace(SCHEDULE, "")  # the path without /api/v1 too
    for want in ("botjobs Bot API", "OAS 3.1", "Schedule a job", "List a bot's jobs", "A job's status",
                 "Cancel a job", "Cancel every pending job of a lead", "Idempotency-Key",
                 '"trigger_code"', '"demo_echo"',  # the request body example of the opened operation
                 "Retry-After"):
        assert want in text, f"the rendered page does not show {want!r}"
    for bad in ("Resolver error", "Failed to load API definition", "Could not resolve reference"):
        assert bad not in text, f"the page shows {bad!r}"
    say(f"docs ui: chromium rendered {len(dom)} bytes of DOM with the schedule operation")


def test_dockerfile_ships_the_docs():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN bash scripts/docs\.sh build/docs$", text, re.M)
    assert re.search(r"^COPY --from=docs /src/build/docs /usr/share/botjobs/docs$", text, re.M)
    assert re.search(r"^ENV BOTJOBS_DOCS_DIR=/usr/share/botjobs/docs$", text, re.M)
