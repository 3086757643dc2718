"""
Integration test harness: real PostgreSQL and a real Apache Kafka broker, started once per session
on free loopback ports in a temporary directory (scripts/pg.sh, scripts/kafka.sh) and stopped at the
end even when tests fail. Each `Stack` gets its own database and its own topic prefix, so tests do
not see each other's data, and runs the real binaries (bin/ or BOTJOBS_BIN_DIR).
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("BOTJOBS_BIN_DIR", ROOT / "bin"))
DEMO = ROOT / "examples" / "demo-bot"


_config = None


def pytest_configure(config):
    global _config
    _config = config


def say(msg):
    """Print past pytest's capture (it captures the file descriptors), so CI logs show it."""
    capman = _config.pluginmanager.getplugin("capturemanager") if _config else None
    if capman is None:
        sys.stderr.write(msg + "\n")
        return
    with capman.global_and_fixture_disabled():
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Postgres:
    def __init__(self, port, datadir=None):
        self.port = port
        self.datadir = datadir

    def uri(self, db="botjobs"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    # For tests that take the database away (own instances only).
    def stop(self):
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "stop", str(self.datadir)], check=True)

    def start(self):
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "start", str(self.datadir), str(self.port)], check=True,
                       capture_output=True)


class Kafka:
    def __init__(self, brokers, version, datadir=None, ports=None):
        self.brokers = brokers
        self.version = version
        self.datadir = datadir
        self.ports = ports

    # For tests that take the broker away (own instances only).
    def stop(self):
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "stop", str(self.datadir)], check=True)

    def start(self):
        out = subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "start", str(self.datadir),
                              str(self.ports[0]), str(self.ports[1])], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("Kafka did not start:\n" + out.stdout + out.stderr)


@pytest.fixture
def own_services(tmp_path_factory):
    """A PostgreSQL and a Kafka broker of the test's own, which it may stop and start."""
    made = []

    def make():
        d = tmp_path_factory.mktemp("own")
        pport, kport, cport = free_port(), free_port(), free_port()
        p = Postgres(pport, d / "pg")
        p.start()
        made.append(("pg", d / "pg"))
        k = Kafka(f"127.0.0.1:{kport}", "", d / "kafka", (kport, cport))
        k.start()
        made.append(("kafka", d / "kafka"))
        return p, k

    yield make
    for kind, d in made:
        if kind == "pg":
            subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "destroy", str(d)])
        else:
            subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "stop", str(d)])


@pytest.fixture(scope="session")
def pg(tmp_path_factory):
    d = tmp_path_factory.mktemp("pg")
    port = free_port()
    out = subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "start", str(d / "data"), str(port)],
                         check=True, capture_output=True, text=True)
    say("integration: " + out.stdout.strip().splitlines()[-1])
    try:
        yield Postgres(port)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "destroy", str(d / "data")])


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    d = tmp_path_factory.mktemp("kafka")
    port, cport = free_port(), free_port()
    out = subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "start", str(d), str(port), str(cport)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("Kafka did not start:\n" + out.stdout + out.stderr)
    version = subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "version"],
                             check=True, capture_output=True, text=True).stdout.strip()
    say("integration: " + out.stdout.strip().splitlines()[-1])
    # The broker says which version it is in its own log: show that line too.
    for line in (d / "kafka.log").read_text().splitlines():
        if "Kafka version" in line:
            say("integration: broker log: " + line.strip())
    try:
        yield Kafka(f"127.0.0.1:{port}", version)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "stop", str(d)])


class Proc:
    """A botjobs binary running in the background, its log in a file."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops it; returns the exit status (None if it had to be killed)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                self.log.close()
                return None
        self.log.close()
        return self.p.returncode

    def tail(self, n=40):
        try:
            return "\n".join(pathlib.Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class Stack:
    """One botjobs deployment on the shared PostgreSQL and Kafka: its own database and topics."""

    def __init__(self, pg, kafka, workdir, worker_args=(), producer_args=()):
        self.pg, self.kafka, self.dir = pg, kafka, workdir
        self.tag = uuid.uuid4().hex[:10]
        self.db = "bj_" + self.tag
        self.prefix = f"t{self.tag}."
        self.group = f"botjobs-worker-{self.tag}"
        with psycopg.connect(pg.uri("postgres"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.db}"')
        self.pg_uri = pg.uri(self.db)
        self.env = dict(os.environ, BOTJOBS_PG_URI=self.pg_uri, BOTJOBS_KAFKA_BROKERS=kafka.brokers,
                        BOTJOBS_TOPIC_PREFIX=self.prefix, BOTJOBS_GROUP_ID=self.group,
                        BOTJOBS_LOG_FORMAT="text", BOTJOBS_PARTITIONS="3")
        self.worker_args, self.producer_args = list(worker_args), list(producer_args)
        self.procs = []
        self.workers = []
        self.producer = None
        self.ctl("migrate")
        self.ctl("load", str(DEMO))
        self.token = self.ctl("token", "create", "Demo Inc", "tests").strip()
        self.db_conn = psycopg.connect(self.pg_uri, autocommit=True)

    # --- processes -------------------------------------------------------------------------------
    def ctl(self, *args, check=True):
        out = subprocess.run([str(BIN / "botjobsctl"), *args], env=self.env, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise AssertionError(f"botjobsctl {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def start_worker(self, *extra):
        port = free_port()
        n = len(self.workers)
        w = Proc(f"worker{n}", [str(BIN / "botjobs-worker"), f"--http-port={port}", f"--worker-id=w{n}-{self.tag}",
                                *self.worker_args, *extra],
                 self.env, self.dir / f"worker{n}.log")
        w.http = f"http://127.0.0.1:{port}"
        self.procs.append(w)
        self.workers.append(w)
        self._wait_ready(w)
        if len([x for x in self.workers if x.alive()]) == 1:
            # The only worker: wait until its consumer has partitions, so tests do not race the group join.
            wait_for(lambda: "partition(s) assigned" in w.tail(200), 30, what=f"{w.name}'s partitions")
        return w

    def start_producer(self, *extra):
        port = free_port()
        p = Proc("producer", [str(BIN / "botjobs-producer"), f"--http-port={port}", "--http-host=127.0.0.1",
                              *self.producer_args, *extra],
                 self.env, self.dir / "producer.log")
        p.http = f"http://127.0.0.1:{port}"
        self.procs.append(p)
        self.producer = p
        self._wait_ready(p)
        return p

    def _wait_ready(self, proc):
        def ready():
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited with {proc.p.returncode}:\n{proc.tail()}")
            try:
                return requests.get(proc.http + "/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, 30, what=f"{proc.name} to be ready")

    def close(self):
        """Stops everything gracefully; returns the processes that did not exit 0."""
        bad = []
        for p in self.procs:
            rc = p.stop()
            if rc not in (0, -9) and not getattr(p, "killed", False):
                bad.append((p.name, rc, p.tail()))
        self.db_conn.close()
        return bad

    # --- HTTP ------------------------------------------------------------------------------------
    @property
    def url(self):
        return self.producer.http

    def schedule(self, body, bot=1, token=None, headers=None, path=None, raw=None):
        h = {"Content-Type": "application/json"}
        if token is not False:
            h["Authorization"] = "Bearer " + (token or self.token)
        h.update(headers or {})
        url = self.url + (path or f"/api/v1/bots/{bot}/jobs/schedule")
        data = raw if raw is not None else json.dumps(body)
        return requests.post(url, data=data, headers=h, timeout=30)

    def api(self, method, path, token=None, **kw):
        """Any API call: path like "/api/v1/bots/1/jobs"."""
        h = kw.pop("headers", {})
        if token is not False:
            h.setdefault("Authorization", "Bearer " + (token or self.token))
        return requests.request(method, self.url + path, headers=h, timeout=30, **kw)

    # --- PostgreSQL ------------------------------------------------------------------------------
    def sql(self, query, *params):
        cur = self.db_conn.execute(query, params or None)
        return cur.fetchall() if cur.description is not None else cur.rowcount

    def job(self, job_id):
        rows = self.sql("SELECT state, due_at, runs, last_run_at, last_error, result FROM jobs WHERE job_id = %s",
                        job_id)
        return dict(zip(("state", "due_at", "runs", "last_run_at", "last_error", "result"), rows[0])) if rows else None

    def wait_job(self, job_id, states=("done",), timeout=20):
        def check():
            j = self.job(job_id)
            return j if j and j["state"] in states else None
        try:
            return wait_for(check, timeout, what=f"job {job_id} in {states}")
        except AssertionError:
            raise AssertionError(f"job {job_id}: {self.job(job_id)}\n" +
                                 "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs))

    def settle(self, body, bot=1):
        """Schedules body (a marker job) and waits until it is stored. Its Kafka key is its bot and lead, so it
        shares a partition with every earlier job of that lead: once it is stored, they were all consumed.
        Returns the marker's job id (to leave it out of counts)."""
        r = self.schedule(body, bot=bot)
        assert r.status_code == 202, r.text
        marker = r.json()["job_id"]
        self.wait_job(marker, states=("scheduled", "running", "done", "failed"))
        return marker

    def lead(self, lead_id, bot=1):
        rows = self.sql("SELECT attributes, tags, status_id FROM leads WHERE bot_id = %s AND id = %s", bot, lead_id)
        return dict(zip(("attributes", "tags", "status_id"), rows[0])) if rows else None

    # --- Kafka -----------------------------------------------------------------------------------
    def topic(self, name):
        return self.prefix + name

    def produce(self, name, value, key=None):
        self.produce_many(name, [(key, value)])

    def produce_many(self, name, pairs):
        """Publishes (key, value) pairs in one flush, so they tend to reach the worker in one batch."""
        p = Producer({"bootstrap.servers": self.kafka.brokers, "enable.idempotence": True, "linger.ms": 50})
        for key, value in pairs:
            p.produce(self.topic(name), value=value, key=key)
        assert p.flush(15) == 0, "the test's own messages were not delivered"

    def messages(self, name, min_count=0, timeout=10.0, idle=1.0):
        """Reads a topic from the beginning: waits for at least min_count messages, then until idle."""
        c = Consumer({"bootstrap.servers": self.kafka.brokers, "group.id": "test-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([self.topic(name)])
        out, deadline, last = [], time.monotonic() + timeout, time.monotonic()
        try:
            while time.monotonic() < deadline:
                m = c.poll(0.1)
                if m is None:
                    if len(out) >= min_count and time.monotonic() - last > idle:
                        break
                    continue
                if m.error():
                    continue
                out.append(m)
                last = time.monotonic()
        finally:
            c.close()
        return out

    def end_offsets(self, name):
        """Sum of the topic's high watermarks (how many messages it holds)."""
        c = Consumer({"bootstrap.servers": self.kafka.brokers, "group.id": "test-" + uuid.uuid4().hex})
        try:
            md = c.list_topics(self.topic(name), timeout=10)
            parts = md.topics[self.topic(name)].partitions
            return sum(c.get_watermark_offsets(TopicPartition(self.topic(name), p), timeout=10)[1] for p in parts)
        finally:
            c.close()

    def committed_lag(self, group=None):
        """Messages of the jobs topic not yet committed by the workers' consumer group."""
        c = Consumer({"bootstrap.servers": self.kafka.brokers, "group.id": group or self.group})
        try:
            t = self.topic("jobs")
            parts = [TopicPartition(t, p) for p in c.list_topics(t, timeout=10).topics[t].partitions]
            lag = 0
            for tp in c.committed(parts, timeout=10):
                high = c.get_watermark_offsets(tp, timeout=10)[1]
                lag += high - (tp.offset if tp.offset >= 0 else 0)
            return lag
        finally:
            c.close()

    def admin(self):
        return AdminClient({"bootstrap.servers": self.kafka.brokers})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def make_stack(pg, kafka, tmp_path, request):
    """Builds stacks for one test; stops them after it and fails the test if a process did not exit 0."""
    stacks = []

    def make(services=None, **kw):
        p, k = services or (pg, kafka)
        d = tmp_path / f"stack{len(stacks)}"
        d.mkdir()
        s = Stack(p, k, d, **kw)
        stacks.append(s)
        return s

    yield make
    problems = []
    for s in stacks:
        problems += s.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for s in stacks:
            for p in s.procs:
                say(f"--- {p.name} log ({request.node.name})\n{p.tail(60)}")
    assert not problems, "unclean exit: " + "; ".join(f"{n} exited {rc}\n{t}" for n, rc, t in problems)


@pytest.fixture
def stack(make_stack):
    """The usual deployment: one producer, one worker."""
    s = make_stack()
    s.start_worker()
    s.start_producer()
    return s
