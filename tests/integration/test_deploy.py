"""
Offline checks of what cannot run here (no Docker engine): docker-compose.yml and the Dockerfile must
be well-formed and consistent with the binaries. If a `docker compose` client is present, its own
`config` check runs too.

Also: the monitoring configuration (Prometheus, alert rules, the Grafana dashboard, prometheus-adapter
rules) uses only metric and label names the C sources export, and the Kubernetes manifests in deploy/
build with kustomize and validate against the Kubernetes JSON schemas with kubeconform, offline (both
tools and the schemas come from scripts/deps.sh with BOTJOBS_DEPS_DEPLOY=1; without them these tests are
skipped, except in CI, where they fail).
"""
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
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


# --- the image ------------------------------------------------------------------------------------------
def dockerfile():
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_runtime_contract():
    text = dockerfile()
    assert re.search(r"^HEALTHCHECK .*/healthz", text, re.M | re.S), "the image has a health check on /healthz"
    assert not re.search(r"^ENTRYPOINT", text, re.M), "the binary is PID 1 (signals, its sandbox children)"
    for label in ("title", "version", "revision", "created"):
        assert f"org.opencontainers.image.{label}" in text
    runtime = text[text.index("FROM debian:12-slim"):]
    assert "USER 10001" in runtime and "useradd" in runtime


def test_dockerfile_builds_with_the_libraries_deps_sh_installs():
    """A library added to scripts/deps.sh (the source of truth for builds) must reach the image's build stage."""
    deps = (ROOT / "scripts" / "deps.sh").read_text()
    pkgs = re.search(r"^pkgs=\((.*?)\)", deps, re.M | re.S).group(1).split()
    build = dockerfile().split("FROM debian:12-slim")[0]
    for p in pkgs:
        if p.endswith("-dev") and p != "libcriterion-dev":
            assert p in build, f"{p} is in scripts/deps.sh but not in the Dockerfile's build stage"


def test_dockerfile_ships_the_docs_once_make_docs_exists():
    makefile = (ROOT / "Makefile").read_text()
    if not re.search(r"^docs:", makefile, re.M):
        return  # no `make docs` yet
    runtime = dockerfile().split("FROM debian:12-slim")[-1]
    m = re.search(r"^COPY --from=\S+ /src/build/docs (\S+)", runtime, re.M)
    assert m, "`make docs` exists: the image must carry build/docs"
    # The producer finds it: BOTJOBS_DOCS_DIR, or ../share/botjobs/docs next to /usr/local/bin.
    env = re.search(r"^ENV BOTJOBS_DOCS_DIR=(\S+)", runtime, re.M)
    assert (env and env.group(1) == m.group(1)) or m.group(1) == "/usr/local/share/botjobs/docs"


# --- compose: hardening, monitoring ---------------------------------------------------------------------
def test_compose_botjobs_containers_are_locked_down():
    s = compose()["services"]
    for name in ("migrate", "producer", "worker"):
        svc = s[name]
        assert svc.get("read_only") is True, f"{name}: read-only root file system"
        assert svc.get("cap_drop") == ["ALL"], f"{name}: drop all capabilities"
        assert "no-new-privileges:true" in (svc.get("security_opt") or []), name
    # The worker drains within its grace: consumer close 10 s + outbox pass 5 s + flush 10 s.
    assert int(s["worker"]["stop_grace_period"].rstrip("s")) >= 25
    assert s["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data", "Kafka's data in its volume"
    assert "kafkadata:/var/lib/kafka/data" in s["kafka"]["volumes"]


def test_compose_monitoring_profile():
    s = compose()["services"]
    for name in ("prometheus", "grafana"):
        assert s[name].get("profiles") == ["monitoring"], f"{name} runs only with --profile monitoring"
    for name in ("kafka", "postgres", "migrate", "producer", "worker"):
        assert not s[name].get("profiles"), f"{name} runs without a profile"
    for svc in ("prometheus", "grafana"):
        for v in s[svc].get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{svc}: mounts {src}, which does not exist"


# --- metric names: dashboards, alerts and autoscaling use only what the binaries export -----------------
def exported_metrics():
    """{name: type} of every metric the C sources register, and the label names they use."""
    names, labels = {}, {"le", "instance", "job", "namespace", "pod"}  # + what Prometheus adds
    for d in ("common", "producer", "worker"):
        for f in (ROOT / d).glob("*.c"):
            src = f.read_text()
            for m in re.finditer(r'\.name = "(botjobs_[a-z0-9_]+)".*?\.type = (CM_METRIC_[A-Z]+)', src, re.S):
                names[m.group(1)] = m.group(2)
            for m in re.finditer(r'CM_FAMILY\(\s*"(botjobs_[a-z0-9_]+)",.*?(CM_METRIC_[A-Z]+)', src, re.S):
                names[m.group(1)] = m.group(2)
            labels |= set(re.findall(r'(?<![%a-z_])([a-z_]+)=\\"', src))  # not the "%sle=" of a format
    assert len(names) > 20, names
    return names, labels


def check_promql(expr, where, names, labels):
    used = set(re.findall(r"\bbotjobs_[a-z0-9_]+", expr))
    for u in used:
        base = re.sub(r"_(bucket|sum|count)$", "", u)
        if u in names:
            assert not (u != base and names.get(base) == "CM_METRIC_HISTOGRAM"), u
            continue
        assert base in names and names[base] == "CM_METRIC_HISTOGRAM", f"{where}: {u} is not a metric of botjobs"
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for lb in (x.strip() for x in group.split(",")):
            if lb and not lb.startswith("<<"):
                assert lb in labels, f"{where}: label {lb} is not one botjobs exports"
    for lb in re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!=|!~|=)", expr):
        assert lb in labels, f"{where}: label {lb} is not one botjobs exports"
    return used


def dashboard():
    return json.loads((ROOT / "monitoring" / "grafana" / "dashboards" / "botjobs.json").read_text())


def test_grafana_dashboard_uses_only_exported_metrics():
    names, labels = exported_metrics()
    d = dashboard()
    ds = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    used = set()
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert panels and len({p["id"] for p in d["panels"]}) == len(d["panels"]), "panel ids are unique"
    for p in panels:
        assert p["datasource"]["uid"] == uid, f"panel {p['title']}: datasource {p['datasource']} is not provisioned"
        for t in p["targets"]:
            used |= check_promql(t["expr"], f"panel {p['title']!r}", names, labels)
    # What an operator needs on one page (issue 9).
    for must in ("botjobs_worker_lateness_seconds_bucket", "botjobs_worker_runs_total", "botjobs_worker_consumer_lag",
                 "botjobs_worker_outbox_backlog", "botjobs_producer_http_requests_total",
                 "botjobs_producer_kafka_delivery_seconds_bucket"):
        assert must in used, f"the dashboard does not show {must}"
    provider = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/dashboards/botjobs.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./monitoring/grafana/dashboards:{path}:ro" in mounts, "the provider reads where compose mounts"


def test_prometheus_config_and_alerts():
    names, labels = exported_metrics()
    cfg = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    s = compose()["services"]
    env_port = {"producer": s["producer"]["environment"]["BOTJOBS_HTTP_PORT"],
                "worker": s["worker"]["environment"]["BOTJOBS_WORKER_HTTP_PORT"]}
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    for job, svc in (("botjobs-producer", "producer"), ("botjobs-worker", "worker")):
        sd = jobs[job]["dns_sd_configs"][0]
        # DNS service discovery of the compose service name: every replica of --scale is a target.
        assert sd["names"] == [svc] and sd["type"] == "A" and str(sd["port"]) == env_port[svc], (job, sd)
    mounts = s["prometheus"]["volumes"]
    for rule_file in cfg["rule_files"]:
        assert any(m.endswith(f":{rule_file}:ro") for m in mounts), f"{rule_file} is not mounted"
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert len(alerts) >= 8
    for r in alerts:
        assert r["alert"].startswith("Botjobs") and r["labels"]["severity"] in ("critical", "warning", "info")
        check_promql(r["expr"], f"alert {r['alert']}", names, labels)
        if "up{" in r["expr"]:
            job = re.search(r'job="([^"]+)"', r["expr"]).group(1)
            assert job in jobs, f"alert {r['alert']}: no scrape job {job}"


def test_prometheus_adapter_rules_use_exported_metrics():
    names, labels = exported_metrics()
    v = yaml.safe_load((ROOT / "deploy" / "prometheus-adapter" / "values.yaml").read_text())
    served = set()
    for kind in ("custom", "external"):
        for r in v["rules"][kind]:
            check_promql(r["seriesQuery"] + " " + r["metricsQuery"], f"adapter {kind} rule", names, labels)
            served.add(r["name"]["as"])
    for doc in k8s_docs(ROOT / "deploy" / "components" / "autoscaling"):
        if doc["kind"] == "HorizontalPodAutoscaler":
            for m in doc["spec"]["metrics"]:
                if m["type"] in ("External", "Pods"):
                    name = m[m["type"].lower()]["metric"]["name"]
                    assert name in served, f"HPA {doc['metadata']['name']}: no adapter rule serves {name}"


# --- Kubernetes: structure (always), schemas (kubeconform, offline) -------------------------------------
def k8s_docs(*dirs):
    out = []
    for d in dirs:
        for f in sorted(pathlib.Path(d).glob("*.yaml")):
            if f.name == "kustomization.yaml":
                continue
            out += [x for x in yaml.safe_load_all(f.read_text()) if x]
    return out


def base_docs():
    return k8s_docs(ROOT / "deploy" / "base")


def by_kind(docs, kind, name):
    (d,) = [x for x in docs if x["kind"] == kind and x["metadata"]["name"] == name]
    return d


def pod_specs(docs):
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Job":
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def test_k8s_kustomizations_list_every_manifest():
    for d in (ROOT / "deploy" / "base", ROOT / "deploy" / "components" / "autoscaling"):
        k = yaml.safe_load((d / "kustomization.yaml").read_text())
        listed = set(k.get("resources", []))
        present = {f.name for f in d.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, f"{d}: listed {sorted(listed)}, present {sorted(present)}"


def test_k8s_settings_are_settings_of_the_binaries():
    env = known_env()
    docs = base_docs() + k8s_docs(ROOT / "deploy" / "components" / "autoscaling")
    cm, secret = by_kind(docs, "ConfigMap", "botjobs-config"), by_kind(docs, "Secret", "botjobs-secret")
    keys = set(cm["data"]) | set(secret["stringData"])
    for _, spec in pod_specs(docs):
        for c in spec["containers"]:
            keys |= {e["name"] for e in c.get("env", [])}
            refs = {r.get("configMapRef", r.get("secretRef"))["name"] for r in c.get("envFrom", [])}
            assert refs == {"botjobs-config", "botjobs-secret"}, c["name"]
    for k in keys:
        assert k in env, f"deploy/: {k} is not a setting of any binary"
    assert "BOTJOBS_PG_URI" in secret["stringData"] and "BOTJOBS_PG_URI" not in cm["data"], "the URI is a secret"


def test_k8s_pods_are_locked_down():
    for name, spec in pod_specs(base_docs()):
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            r = c["resources"]
            assert r["requests"]["cpu"] and r["requests"]["memory"] and r["limits"]["memory"], name


def test_k8s_probes_ports_and_drain():
    docs = base_docs()
    cm = by_kind(docs, "ConfigMap", "botjobs-config")["data"]
    for name, port_env, port, grace_min in (("botjobs-producer", "BOTJOBS_HTTP_PORT", 8080, 18),
                                            ("botjobs-worker", "BOTJOBS_WORKER_HTTP_PORT", 9091, 25)):
        spec = by_kind(docs, "Deployment", name)["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env[port_env] == str(port), name
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path and named[get["port"]] == port, (name, probe)
        assert spec["terminationGracePeriodSeconds"] >= grace_min, name
        assert c["args"] == [name]
    worker = by_kind(docs, "Deployment", "botjobs-worker")
    assert worker["spec"]["replicas"] <= int(cm["BOTJOBS_PARTITIONS"]), "workers <= partitions"
    hpa = by_kind(k8s_docs(ROOT / "deploy" / "components" / "autoscaling"), "HorizontalPodAutoscaler", "botjobs-worker")
    assert hpa["spec"]["maxReplicas"] <= int(cm["BOTJOBS_PARTITIONS"]), "worker HPA: at most one worker per partition"
    assert "replicas" not in by_kind(docs, "Deployment", "botjobs-producer")["spec"], "the producer HPA owns replicas"
    pdbs = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for d in docs
            if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == {"botjobs-producer", "botjobs-worker"}


def deploy_tool(name):
    local = ROOT / ".local" / "deploy" / "bin" / name
    path = str(local) if local.exists() else shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        raise AssertionError(f"{name} is missing: CI must run the deploy checks (BOTJOBS_DEPS_DEPLOY=1 scripts/deps.sh)")
    pytest.skip(f"{name} not installed: BOTJOBS_DEPS_DEPLOY=1 bash scripts/deps.sh")


def schemas():
    d = ROOT / ".local" / "deploy" / "schemas"
    versions_file = ROOT / ".local" / "deploy" / "k8s-versions"
    if not versions_file.exists():
        if os.environ.get("CI"):
            raise AssertionError("Kubernetes schemas missing: BOTJOBS_DEPS_DEPLOY=1 scripts/deps.sh")
        pytest.skip("Kubernetes schemas not installed: BOTJOBS_DEPS_DEPLOY=1 bash scripts/deps.sh")
    return d, versions_file.read_text().split()


def kubeconform(manifests, version):
    d, _ = schemas()
    loc = str(d) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    # -schema-location replaces the default (GitHub) location: nothing is fetched.
    return subprocess.run([deploy_tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", version,
                           "-schema-location", loc, "-"], input=manifests, capture_output=True, text=True)


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_k8s_manifests_build_and_validate_offline(overlay):
    kustomize = deploy_tool("kustomize")
    _, versions = schemas()
    built = subprocess.run([kustomize, "build", str(ROOT / "deploy" / overlay)], capture_output=True, text=True,
                           env=dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"))
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert all(d["metadata"].get("namespace") == "botjobs" for d in docs if d["kind"] != "Namespace")
    for v in versions:
        out = kubeconform(built.stdout, v)
        assert out.returncode == 0, f"Kubernetes {v}:\n{out.stdout}{out.stderr}"
        assert f"Valid: {len(docs)}, Invalid: 0, Errors: 0, Skipped: 0" in out.stdout, out.stdout


def test_kubeconform_catches_a_broken_manifest():
    """The schemas are really used: a misspelt field and a wrong type fail."""
    _, versions = schemas()
    bad = (ROOT / "deploy" / "base" / "worker.yaml").read_text()
    bad = bad.replace("terminationGracePeriodSeconds: 60", "terminationGracePeriodSecond: 60")
    bad = bad.replace('containerPort: 9091', 'containerPort: "9091"')
    out = kubeconform(bad, versions[0])
    assert out.returncode != 0
    assert "terminationGracePeriodSecond" in out.stdout and "containerPort" in out.stdout, out.stdout


# --- compose against the Compose Specification's JSON schema (offline) ----------------------------------
def schema_errors(schema, node, root, path="$"):
    """The subset of JSON Schema that compose_spec.json uses: type, properties, additionalProperties,
    patternProperties, required, items, enum, oneOf, anyOf, $ref, minimum/maximum; formats are not checked."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return schema_errors(root["definitions"][name], node, root, path)
    errs = []
    types = schema.get("type")
    if types:
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        ok = False
        for t in ([types] if isinstance(types, str) else types):
            if t in ("number", "integer"):
                ok |= isinstance(node, (int, float)) and not isinstance(node, bool) and \
                    (t == "number" or isinstance(node, int))
            else:
                ok |= isinstance(node, kinds[t])
        if not ok:
            return [f"{path}: {node!r} is not of type {types}"]
    if "enum" in schema and node not in schema["enum"]:
        errs.append(f"{path}: {node!r} is not one of {schema['enum']}")
    for alt, need in (("oneOf", "one"), ("anyOf", "any")):
        if alt in schema:
            passing = [s for s in schema[alt] if not schema_errors(s, node, root, path)]
            if (need == "one" and len(passing) != 1) or (need == "any" and not passing):
                errs.append(f"{path}: matches {len(passing)} of the {alt} alternatives")
    if isinstance(node, dict):
        props, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        for r in schema.get("required", []):
            if r not in node:
                errs.append(f"{path}: {r} is required")
        for k, v in node.items():
            matched = False
            if k in props:
                errs += schema_errors(props[k], v, root, f"{path}.{k}")
                matched = True
            for pat, sub in patterns.items():
                if re.search(pat, k):
                    errs += schema_errors(sub, v, root, f"{path}.{k}")
                    matched = True
            extra = schema.get("additionalProperties", True)
            if not matched:
                if extra is False:
                    errs.append(f"{path}: unknown key {k!r}")
                elif isinstance(extra, dict):
                    errs += schema_errors(extra, v, root, f"{path}.{k}")
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(node):
            errs += schema_errors(schema["items"], v, root, f"{path}[{i}]")
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        if "minimum" in schema and node < schema["minimum"]:
            errs.append(f"{path}: below {schema['minimum']}")
    return errs


def compose_schema():
    f = ROOT / ".local" / "deploy" / "schemas" / "compose-spec.json"
    if not f.exists():
        if os.environ.get("CI"):
            raise AssertionError("the Compose schema is missing: BOTJOBS_DEPS_DEPLOY=1 scripts/deps.sh")
        pytest.skip("the Compose schema is not installed: BOTJOBS_DEPS_DEPLOY=1 bash scripts/deps.sh")
    return json.loads(f.read_text())


def test_compose_file_matches_the_compose_schema():
    schema = compose_schema()
    errs = schema_errors(schema, compose(), schema)
    assert not errs, "docker-compose.yml against the Compose Specification schema:\n" + "\n".join(errs)


def test_compose_schema_check_catches_mistakes():
    schema = compose_schema()
    c = compose()
    c["services"]["worker"]["healthcheck"]["intervall"] = "10s"
    c["services"]["producer"]["depends_on"]["migrate"]["condition"] = "service_done"
    c["services"]["worker"]["read_only"] = "yes"
    errs = "\n".join(schema_errors(schema, c, schema))
    assert "intervall" in errs and "depends_on" in errs and "read_only" in errs, errs
