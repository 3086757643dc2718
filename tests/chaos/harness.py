"""
harness.py - the moving parts of the chaos harness (tests/chaos/chaos.py runs them):

  Services    its own PostgreSQL and Kafka broker on free loopback ports, which the nemesis may kill -9,
              stop gracefully, pause (SIGSTOP) or lock, and start again;
  Deployment  one botjobs deployment per scenario (its own database and topics, like the integration
              tests' Stack): the chaos bot code, a producer on a fixed port and N workers, each
              restartable under the same name; a supervisor restarts what dies unexpectedly and
              records it as a crash;
  Load        the load generator: schedules jobs over HTTP (immediate, delayed, periodic, broadcast,
              and requests with an Idempotency-Key that are retried) and records every attempt in the
              ledger (202 = accepted; 503, other answers, timeouts and refused connections = not);
  Nemesis     injects one fault at a time on a schedule and records when it struck and when the
              part was back.

Everything is on 127.0.0.1. The integration tests' helpers (tests/integration/conftest.py) are reused
as they are: Postgres, Kafka, Stack, Proc, free_port, wait_for.
"""
import datetime as dt
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import conftest as it  # noqa: E402  (the integration tests' helpers)

BOT = 1
LEADS = list(range(1001, 1031))  # the chaos leads; the demo bot's leads 1-3 only get broadcasts
INTERVAL = 3  # repeat_interval_sec of periodic jobs (the binaries run with --min-interval-sec=2)
LEASE = 3  # --lease-sec of the workers: a dead worker's jobs run again after it

# Every run of chaos_count leaves evidence that makes a second application visible: a counter per
# job (n<cid>, one increment per run), the lead's effect log (seq: "<cid>:<k>" in the order effects
# were applied, k = runs before this one) and one outbound message naming both.
TRIGGER = """var c = String(request.json.cid);
var k = lead.getIntAttr('n' + c, 0);
lead.setAttr('n' + c, k + 1);
var seq = lead.getJsonAttr('seq') || [];
seq.push(c + ':' + k);
lead.setJsonAttr('seq', seq);
bot.sendText('chaos ' + c + ':' + k);"""
# A broadcast reaches every lead once: a counter per broadcast and lead, and a message.
BROADCAST = """var c = String(request.json.cid);
lead.setAttr('b' + c, lead.getIntAttr('b' + c, 0) + 1);
bot.sendText('bcast ' + c);"""

# When each job row was committed (the per-lead order check needs it): a row per stored job, whose
# xmin's commit timestamp (track_commit_timestamp) is the job's commit time. Test instrumentation in
# the scenario's own database only.
INSTRUMENT = """
CREATE TABLE chaos_ingest (job_id uuid NOT NULL);
CREATE FUNCTION chaos_ingest_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO chaos_ingest (job_id) VALUES (NEW.job_id);
	RETURN NULL;
END $$;
CREATE TRIGGER chaos_ingest AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION chaos_ingest_note();
"""


def now():
    return time.time()


def ts(t):
    """Epoch seconds -> RFC 3339 with milliseconds, as run_at takes it."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(s):
    """RFC 3339 (…Z) or a datetime -> epoch seconds; None stays None."""
    if s is None:
        return None
    if isinstance(s, dt.datetime):
        return s.timestamp()
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def log(msg):
    sys.stderr.write(time.strftime("%H:%M:%S ") + msg + "\n")
    sys.stderr.flush()


# ---- services ---------------------------------------------------------------------------------------

def _children(pid):
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return out


class Services:
    """PostgreSQL and Kafka of the chaos run's own, in workdir."""

    def __init__(self, workdir):
        self.dir = pathlib.Path(workdir)
        self.pg = it.Postgres(it.free_port(), self.dir / "pg")
        kport, cport = it.free_port(), it.free_port()
        self.kafka = it.Kafka(f"127.0.0.1:{kport}", "", self.dir / "kafka", (kport, cport))
        self.lock = threading.Lock()

    def start(self):
        self.pg.start()
        # Commit timestamps for the order check (needs a restart to take effect).
        with psycopg.connect(self.pg.uri("postgres"), autocommit=True) as c:
            c.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        self.pg.stop()
        self.pg.start()
        self.kafka.start()

    def destroy(self):
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "stop", str(self.kafka.datadir)])
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "destroy", str(self.pg.datadir)])

    # PostgreSQL
    def pg_pids(self):
        """The postmaster and its children, postmaster first; [] when it is not running."""
        try:
            pm = int((pathlib.Path(os.path.realpath(self.pg.datadir)) / "postmaster.pid").read_text().split()[0])
            os.kill(pm, 0)
        except (OSError, ValueError, IndexError):
            return []
        if _state(pm) in ("Z", "gone"):
            return []
        return [pm] + _children(pm)

    def pg_kill9(self):
        pids = self.pg_pids()
        for p in pids:  # the postmaster first, so that it cannot start a crash recovery cycle meanwhile
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = now() + 20
        while any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids) and now() < deadline:
            time.sleep(0.05)
        # The postmaster is not our child: until init reaps it, its zombie passes kill -0, and pg_ctl
        # (and PostgreSQL's own lock file check) would take it for a running server. Every process of
        # the cluster is dead by now, as after a power cut: the lock file goes, as a reboot would.
        if pids and all(_state(p) in ("Z", "gone") for p in pids):
            (pathlib.Path(os.path.realpath(self.pg.datadir)) / "postmaster.pid").unlink(missing_ok=True)

    def pg_signal(self, sig):
        for p in self.pg_pids():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def pg_start(self):
        """Starts PostgreSQL; after a kill -9, a backend the postmaster forked just before it died may
        still hold the old shared memory for a moment ("pre-existing shared memory block is still in
        use"): it exits on its own once it notices, so a failed start is tried again for up to 20 s."""
        for attempt in range(20):
            try:
                self.pg.start()
                return
            except subprocess.CalledProcessError:
                if attempt == 19:
                    raise
                log("PostgreSQL did not start yet (left-over backends?); again in 1 s")
                time.sleep(1)

    def pg_up(self):
        try:
            with psycopg.connect(self.pg.uri("postgres"), connect_timeout=2) as c:
                c.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    # Kafka
    def kafka_pid(self):
        try:
            pid = int((pathlib.Path(self.kafka.datadir) / "kafka.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return None if _state(pid) in ("Z", "gone") else pid

    def kafka_kill9(self):
        pid = self.kafka_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
                time.sleep(0.05)
        # The broker is not our child: until init reaps it, the zombie passes kafka.sh's kill -0 and
        # "kafka.sh start" would answer "already running" (the broker stayed down for 90 s).
        (pathlib.Path(self.kafka.datadir) / "kafka.pid").unlink(missing_ok=True)

    def heal(self):
        """Whatever a fault left stopped or down, running again."""
        self.pg_signal(signal.SIGCONT)
        if not self.pg_pids():
            self.pg_start()
        if not self.kafka_pid():
            self.kafka.start()


def _state(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


# ---- the deployment ---------------------------------------------------------------------------------

class Managed:
    """A botjobs binary the harness starts, kills, pauses and restarts under the same name and port."""

    def __init__(self, dep, name, argv, http):
        self.dep, self.name, self.argv, self.http = dep, name, argv, http
        self.proc = None
        self.expected_down = True  # until started: the supervisor leaves it alone
        self.paused = False
        self.starts = 0

    def start(self, wait=True, timeout=60):
        self.proc = it.Proc(self.name, self.argv, self.dep.env, self.dep.dir / f"{self.name}.log")
        self.starts += 1
        self.expected_down = False
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout=60):
        deadline = now() + timeout
        while now() < deadline:
            if not self.alive():
                return False
            try:
                if requests.get(self.http + "/readyz", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def alive(self):
        return self.proc is not None and self.proc.alive()

    @property
    def pid(self):
        return self.proc.p.pid

    def kill(self, sig=signal.SIGKILL, timeout=60):
        """Sends sig and waits for the exit; returns the exit status (None: it had to be killed)."""
        self.expected_down = True
        if self.paused:
            self.resume()
        if not self.alive():
            return self.proc.p.returncode if self.proc else None
        self.proc.p.send_signal(sig)
        try:
            return self.proc.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.p.kill()
            self.proc.p.wait()
            return None
        finally:
            self.proc.log.close()

    def pause(self):
        self.paused = True
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        if self.paused and self.alive():
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def tail(self, n=30):
        return self.proc.tail(n) if self.proc else ""


class Deployment(it.Stack):
    """The integration tests' Stack (own database, topic prefix, demo bot, token) plus the chaos bot
    code, and managed processes: one producer and `workers` workers."""

    def __init__(self, services, workdir, workers=2, worker_args=(), producer_args=()):
        super().__init__(services.pg, services.kafka, workdir)
        self.services = services
        self.sql(INSTRUMENT)
        self.sql("INSERT INTO triggers (bot_id, id, code, body) VALUES (%s, 900, 'chaos_count', %s)", BOT, TRIGGER)
        self.sql("INSERT INTO broadcasts (bot_id, id, code, body) VALUES (%s, 901, 'chaos_bcast', %s)", BOT, BROADCAST)
        self.sql("INSERT INTO leads (bot_id, id, name, channel) SELECT %s, i, 'chaos ' || i, 'telegram'"
                 " FROM unnest(%s::bigint[]) i", BOT, LEADS)
        self.leads = [r[0] for r in self.sql("SELECT id FROM leads WHERE bot_id = %s AND NOT muted ORDER BY id", BOT)]
        self.crashes, self.unclean = [], []
        common = ["--log-format=text", f"--min-interval-sec={INTERVAL - 1}"]
        pport = it.free_port()
        self.producer_m = Managed(self, "producer",
                                  [str(it.BIN / "botjobs-producer"), f"--http-port={pport}", "--http-host=127.0.0.1",
                                   "--rate-limit=0", "--access-log=false", *common, *producer_args],
                                  f"http://127.0.0.1:{pport}")
        self.workers_m = []
        for i in range(workers):
            port = it.free_port()
            self.workers_m.append(Managed(self, f"worker{i}",
                                          [str(it.BIN / "botjobs-worker"), f"--http-port={port}", "--http-host=127.0.0.1",
                                           f"--worker-id=w{i}-{self.tag}", f"--lease-sec={LEASE}",
                                           "--broadcast-chunk=8", *common, *worker_args],
                                          f"http://127.0.0.1:{port}"))
        self.producer = self.producer_m  # Stack.url reads producer.http
        self._stop = threading.Event()
        self._sup = None

    def managed(self):
        return [self.producer_m, *self.workers_m]

    def start(self):
        for w in self.workers_m:
            w.start()
        it.wait_for(lambda: all("partition(s) assigned" in w.tail(400) for w in self.workers_m), 60,
                    interval=0.2, what="every worker's partitions")
        self.producer_m.start()
        self._sup = threading.Thread(target=self._supervise, daemon=True)
        self._sup.start()

    def _supervise(self):
        """A process that exits without the nemesis asking is a crash: recorded, then restarted."""
        while not self._stop.wait(0.2):
            for m in self.managed():
                if m.expected_down or m.proc is None or m.alive():
                    continue
                rc = m.proc.p.returncode
                self.crashes.append({"name": m.name, "rc": rc, "t": now(), "log": m.tail(40)})
                log(f"CRASH: {m.name} exited {rc} unasked:\n{m.tail(15)}")
                m.proc.log.close()
                time.sleep(1)
                if not self._stop.is_set():
                    m.start(wait=False)

    def sanitizer_reports(self):
        """ASan/UBSan/LeakSanitizer reports in the logs (sanitized binaries: BOTJOBS_BIN_DIR=build/san/bin)."""
        out = []
        for p in self.dir.glob("*.log"):
            text = p.read_text(errors="replace")
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in text:
                    i = text.index(marker)
                    out.append(f"{p.name}: {text[max(0, i - 200):i + 1500]}")
        return out

    def stop_all(self):
        """Stops the supervisor, then every process gracefully; a non-zero exit is an unclean exit."""
        self._stop.set()
        if self._sup:
            self._sup.join()
        for m in self.managed():
            if m.proc is None or m.expected_down:
                continue
            rc = m.kill(signal.SIGTERM, timeout=60)
            if rc != 0:
                self.unclean.append({"name": m.name, "rc": rc, "t": now(), "log": m.tail(40)})
        self.db_conn.close()

    def sql(self, query, *params):
        """Stack.sql, reconnecting once when PostgreSQL was restarted under it."""
        for attempt in range(2):
            try:
                return super().sql(query, *params)
            except psycopg.OperationalError:
                if attempt:
                    raise
                try:
                    self.db_conn.close()
                except psycopg.Error:
                    pass
                self.db_conn = psycopg.connect(self.pg_uri, autocommit=True, connect_timeout=5)


# ---- load -------------------------------------------------------------------------------------------

class Load:
    """Schedules jobs over HTTP from a few threads at a steady rate; the ledger records every attempt:
    {cid, kind, lead, attempt, key, sent, done, status (int | 'timeout' | 'conn'), job_id, due, body}."""

    MIX = (("immediate", 0.38), ("delayed", 0.30), ("idempotent", 0.24), ("periodic", 0.04), ("broadcast", 0.04))

    def __init__(self, dep, rate, duration, seed=1, threads=4, max_periodic=None, max_broadcast=None):
        self.dep, self.rate, self.duration = dep, rate, duration
        self.rnd = random.Random(seed)
        self.threads = threads
        self.ledger = []
        self.lock = threading.Lock()
        self.next_cid = 0
        self.max_periodic = max_periodic if max_periodic is not None else max(2, int(duration / 8))
        self.max_broadcast = max_broadcast if max_broadcast is not None else max(2, int(duration / 6))
        self.counts = {k: 0 for k, _ in self.MIX}
        self._stop = threading.Event()
        self._threads = []

    def _pick(self):
        with self.lock:
            self.next_cid += 1
            cid = self.next_cid
            while True:
                x, acc = self.rnd.random(), 0.0
                for kind, w in self.MIX:
                    acc += w
                    if x < acc:
                        break
                if kind == "periodic" and self.counts[kind] >= self.max_periodic:
                    continue
                if kind == "broadcast" and self.counts[kind] >= self.max_broadcast:
                    continue
                self.counts[kind] += 1
                return cid, kind, self.rnd.choice(LEADS), self.rnd.random(), self.rnd.uniform(0.3, 8.0)

    def _body(self, cid, kind, lead, coin, delay):
        params = {"cid": cid}
        if kind == "broadcast":
            return {"broadcast_code": "chaos_bcast", "script_request_params": params}
        b = {"trigger_code": "chaos_count", "lead_id": lead, "script_request_params": params}
        if kind == "delayed":
            if coin < 0.5:
                b["run_after_sec"] = max(1, int(delay))
            else:
                b["run_at"] = ts(now() + delay)
        elif kind == "idempotent" and coin < 0.5:
            b["run_at"] = ts(now() + delay)  # an absolute time: every retry sends the same body
        elif kind == "periodic":
            b.update(is_periodic=True, repeat_interval_sec=INTERVAL, run_after_sec=1)
        return b

    def _send(self, session, cid, kind, lead, body, key, attempt):
        headers = {"Content-Type": "application/json", "Authorization": "Bearer " + self.dep.token}
        if key:
            headers["Idempotency-Key"] = key
        rec = {"cid": cid, "kind": kind, "lead": lead if kind != "broadcast" else None, "attempt": attempt,
               "key": key, "sent": now(), "body": body}
        retry_after = 1.0
        try:
            r = session.post(self.dep.url + f"/api/v1/bots/{BOT}/jobs/schedule", data=json.dumps(body),
                             headers=headers, timeout=(2, 15))
            rec["status"] = r.status_code
            if r.status_code == 202:
                j = r.json()
                rec["job_id"], rec["due"] = j["job_id"], epoch(j["due_at"])
            else:
                rec["message"] = r.text[:200]
                retry_after = float(r.headers.get("Retry-After", 1))
        except requests.Timeout:
            rec["status"] = "timeout"
        except requests.RequestException as e:
            rec["status"] = "conn"
            rec["message"] = str(e)[:200]
        rec["done"] = now()
        with self.lock:
            self.ledger.append(rec)
        return rec, retry_after

    def _loop(self, i):
        session = requests.Session()
        period = self.threads / self.rate
        nxt = now() + i * period / self.threads
        end = self.t0 + self.duration
        while not self._stop.is_set() and now() < end:
            wait = nxt - now()
            if wait > 0:
                if self._stop.wait(wait):
                    break
            elif wait < -1:
                nxt = now()  # fell behind (slow answers): do not burst to catch up
            nxt += period
            cid, kind, lead, coin, delay = self._pick()
            body = self._body(cid, kind, lead, coin, delay)
            key = f"chaos-{self.dep.tag}-{cid}" if kind == "idempotent" else None
            for attempt in range(1, 5 if key else 2):
                rec, retry_after = self._send(session, cid, kind, lead, body, key, attempt)
                if rec["status"] == 202 or not key or now() > end:
                    break
                if rec["status"] not in (503, "timeout", "conn"):
                    break
                # The same key and body again: at most one job may come of it.
                if self._stop.wait(min(retry_after, 2.0) * (0.5 + self.rnd.random())):
                    break
                session = requests.Session()
            if rec["status"] in ("conn", "timeout"):
                session = requests.Session()

    def start(self):
        self.t0 = now()
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)

    def join(self):
        for t in self._threads:
            t.join()

    def stop(self):
        self._stop.set()
        self.join()


# ---- faults -----------------------------------------------------------------------------------------

def _worker(dep, rnd):
    live = [w for w in dep.workers_m if w.alive() and not w.paused]
    return rnd.choice(live or dep.workers_m)


def _proc_fault(kind):
    """kill -9 or SIGTERM of a worker or the producer, then the same binary again."""
    what, how = kind.split("-")

    def fault(dep, services, rnd, ev):
        m = _worker(dep, rnd) if what == "worker" else dep.producer_m
        ev["target"] = m.name
        rc = m.kill(signal.SIGKILL if how == "kill9" else signal.SIGTERM, timeout=60)
        if how == "term":
            ev["rc"] = rc
            if rc != 0:
                dep.unclean.append({"name": m.name, "rc": rc, "t": now(), "log": m.tail(40)})
                log(f"UNCLEAN EXIT: {m.name} exited {rc} on SIGTERM:\n{m.tail(15)}")
        time.sleep(rnd.uniform(0.3, 1.5))
        ev["healed"] = now()
        m.start(wait=False)
        m.wait_ready(60)
    return fault


def _worker_pause(dep, services, rnd, ev):
    """SIGSTOP longer than the lease: its jobs go to the other worker; after SIGCONT its late
    completions must be refused (the lease moved on)."""
    m = _worker(dep, rnd)
    ev["target"] = m.name
    m.pause()
    time.sleep(LEASE + rnd.uniform(2, 4))
    m.resume()
    ev["healed"] = now()


def _kafka_fault(how):
    def fault(dep, services, rnd, ev):
        ev["target"] = "kafka"
        if how == "kill9":
            services.kafka_kill9()
        else:
            services.kafka.stop()
        time.sleep(rnd.uniform(0.5, 2.0))
        ev["healed"] = now()
        services.kafka.start()
    return fault


def _pg_fault(how):
    def fault(dep, services, rnd, ev):
        ev["target"] = "postgresql"
        if how == "kill9":
            services.pg_kill9()
        else:
            services.pg.stop()  # pg_ctl stop -m fast: a graceful shutdown
        time.sleep(rnd.uniform(0.5, 2.0))
        ev["healed"] = now()
        services.pg_start()
    return fault


def _pg_stall(dep, services, rnd, ev):
    """Slow PostgreSQL: every PostgreSQL process stopped (SIGSTOP) for 1-3 s, then continued."""
    ev["target"] = "postgresql"
    services.pg_signal(signal.SIGSTOP)
    time.sleep(rnd.uniform(1.0, 3.0))
    services.pg_signal(signal.SIGCONT)
    ev["healed"] = now()


def _pg_lock(dep, services, rnd, ev):
    """Slow PostgreSQL: a session holds ACCESS EXCLUSIVE locks on jobs and leads for 2-4 s (as a
    careless migration would): ingest, claims and completions queue behind it."""
    ev["target"] = "postgresql"
    with psycopg.connect(dep.pg_uri, connect_timeout=5) as c:
        c.execute("LOCK TABLE jobs, leads IN ACCESS EXCLUSIVE MODE")
        time.sleep(rnd.uniform(2.0, 4.0))
        c.rollback()
    ev["healed"] = now()


FAULTS = {
    "worker-kill9": _proc_fault("worker-kill9"),
    "worker-term": _proc_fault("worker-term"),
    "worker-pause": _worker_pause,
    "producer-kill9": _proc_fault("producer-kill9"),
    "producer-term": _proc_fault("producer-term"),
    "kafka-kill9": _kafka_fault("kill9"),
    "kafka-term": _kafka_fault("term"),
    "pg-kill9": _pg_fault("kill9"),
    "pg-term": _pg_fault("term"),
    "pg-stall": _pg_stall,
    "pg-lock": _pg_lock,
}
# Pause between two faults (seconds, uniform), so each one's recovery can be seen on its own.
GAPS = {"worker-kill9": (2, 4), "worker-term": (2, 4), "worker-pause": (2, 4), "producer-kill9": (3, 5),
        "producer-term": (3, 5), "kafka-kill9": (4, 7), "kafka-term": (4, 7), "pg-kill9": (4, 7),
        "pg-term": (4, 7), "pg-stall": (2, 4), "pg-lock": (2, 4)}


class Nemesis:
    """Injects faults one at a time, from `start` seconds after it begins until `end`; records each as
    {fault, target, inject, healed, healthy} (epoch seconds). `faults` is a list of FAULTS names; the
    mixed scenario gives all of them and the nemesis picks at random."""

    def __init__(self, dep, services, faults, start, end, seed=1):
        self.dep, self.services, self.faults = dep, services, list(faults)
        self.start_at, self.end_at = start, end
        self.rnd = random.Random(seed)
        self.events = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = None

    def _healthy(self):
        """Every process alive and ready, both services answering."""
        return (self.services.pg_up() and self.services.kafka_pid() is not None
                and all(m.alive() and not m.paused for m in self.dep.managed())
                and all(requests.get(m.http + "/readyz", timeout=1).status_code == 200 for m in self.dep.managed()))

    def _run(self):
        if self._stop.wait(max(0.0, self.start_at - now())):
            return
        while not self._stop.is_set() and now() < self.end_at:
            name = self.rnd.choice(self.faults)
            ev = {"fault": name, "inject": now()}
            log(f"nemesis: {name}")
            try:
                FAULTS[name](self.dep, self.services, self.rnd, ev)
            except Exception as e:  # a fault that could not be injected or healed is reported, not fatal
                self.errors.append(f"{name}: {e!r}")
                log(f"nemesis: {name} failed: {e!r}")
                ev.setdefault("healed", now())
                try:
                    self.services.heal()
                except Exception as e2:
                    self.errors.append(f"{name}: heal: {e2!r}")
                    log(f"nemesis: {name}: heal failed: {e2!r}")
            deadline = now() + 90
            while now() < deadline:
                try:
                    if self._healthy():
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            ev["healthy"] = now()
            self.events.append(ev)
            log(f"nemesis: {name} on {ev.get('target')}: back after {ev['healthy'] - ev['inject']:.1f} s")
            lo, hi = GAPS[name]
            if self._stop.wait(self.rnd.uniform(lo, hi)):
                break

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.services.heal()
        for m in self.dep.managed():
            m.resume()


def new_tag():
    return uuid.uuid4().hex[:8]
