"""
The README's configuration tables are the binaries' own (tools/readme-config.sh writes them).
"""
import subprocess

from conftest import BIN, ROOT


def test_readme_configuration_tables_match_the_binaries():
    readme = (ROOT / "README.md").read_text()
    for name, binary in (("producer", "botjobs-producer"), ("worker", "botjobs-worker"), ("ctl", "botjobsctl")):
        table = subprocess.run([str(BIN / binary), "--help-markdown"], capture_output=True, text=True,
                               check=True).stdout
        start, end = f"<!-- config:{name}:start -->\n", f"<!-- config:{name}:end -->"
        section = readme[readme.index(start) + len(start):readme.index(end)]
        assert section == table, f"README.md: the {name} table is stale; run tools/readme-config.sh"


def test_every_binary_answers_help_and_rejects_bad_flags():
    for binary in ("botjobs-producer", "botjobs-worker", "botjobsctl"):
        assert subprocess.run([str(BIN / binary), "--help"], capture_output=True).returncode == 0
        bad = subprocess.run([str(BIN / binary), "--no-such-flag"], capture_output=True, text=True)
        assert bad.returncode == 2 and "unknown option '--no-such-flag'" in bad.stderr
    bad = subprocess.run([str(BIN / "botjobs-worker"), "--lease-sec=1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--lease-sec" in bad.stderr
