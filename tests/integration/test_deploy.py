"""
Offline checks of what cannot run here (no Docker engine): docker-compose.yml and the Dockerfile must
be well-formed and consistent with the binaries. If a `docker compose` client is present, its own
`config` check runs too.
"""
import pathlib
import re
import shutil
import subprocess

import yaml

from conftest import BIN, ROOT


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def known_env():
    names = set()
    for b in ("botjobs-producer", "botjobs-worker", "botjobsctl"):
        out = subprocess.run([str(BIN / b), "--help-markdown"], capture_output=True, text=True, check=True).stdout
        names |= set(re.findall(r"`(BOTJOBS_[A-Z_]+)`", out))
    return names


def test_compose_services_and_wiring():
    c = compose()
    s = c["services"]
    assert {"kafka", "postgres", "migrate", "producer", "worker"} <= set(s)
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", s["kafka"]["image"]), "Kafka must stay on 3.9.x (librdkafka 2.0.2)"
    assert s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    for name, svc in s.items():
        for dep in (svc.get("depends_on") or {}):
            assert dep in s, f"{name} depends on unknown service {dep}"
    assert s["producer"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert s["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Workers scale with --scale worker=N: no fixed name, no published port.
    assert "container_name" not in s["worker"] and "ports" not in s["worker"]
    assert s["producer"]["ports"] == ["8080:8080"]


def test_compose_uses_only_settings_the_binaries_know():
    env = known_env()
    for name, svc in compose()["services"].items():
        for key in (svc.get("environment") or {}):
            if key.startswith("BOTJOBS_"):
                assert key in env, f"{name}: {key} is not a setting of any binary"


def test_compose_commands_exist():
    s = compose()["services"]
    assert s["producer"]["command"] == ["botjobs-producer"]
    assert s["worker"]["command"] == ["botjobs-worker"]
    migrate = " ".join(s["migrate"]["command"])
    for word in ("botjobsctl migrate", "botjobsctl topics", "botjobsctl load"):
        assert word in migrate


def test_dockerfile_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:12 AS build", text, re.M) and re.search(r"^FROM debian:12-slim", text, re.M)
    assert re.search(r"^USER 10001", text, re.M), "the image runs as a non-root user"
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / src).exists(), f"COPY {src}: no such path"


def test_docker_compose_config_when_a_client_exists():
    docker = shutil.which("docker")
    if not docker:
        return  # no client here: the structural checks above stand in
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        return  # a docker client without the compose plugin
    out = subprocess.run([docker, "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
