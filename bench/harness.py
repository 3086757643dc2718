"""
harness.py - what the workloads of bench.py share: the machine's description, percentiles and summaries,
CPU and peak memory read from /proc, and the services: one PostgreSQL (default durability: fsync on,
synchronous_commit on) and one real Kafka broker on free loopback ports, with a database and topics of
its own for each workload (the integration tests' Stack, tests/integration/conftest.py).
"""
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import conftest  # noqa: E402  (the integration harness: Stack, Postgres, Kafka)

BOT = 900
TOOLS = ROOT / "build" / "rel" / "bench"


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"host": socket.gethostname(), "cores": os.cpu_count(), "memory_mib": mem, "cpu": model,
            "kernel": platform.release()}


def pct(values, p):
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values):
    """Median, min and max of the repetitions (None where a repetition had no value)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "runs": values}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": values}


def distribution(values, bins=60):
    """A distribution for the plots: quantiles (for a CDF) and a histogram up to the 99.9th percentile."""
    s = sorted(values)
    if not s:
        return None
    qs = [i / 2 for i in range(0, 199)] + [99.5, 99.9, 99.99, 100]
    top = pct(s, 99.9) or s[-1]
    lo = min(0.0, s[0])
    width = max((top - lo) / bins, 1e-3)
    counts = [0] * (bins + 1)
    for v in s:
        counts[min(int((v - lo) / width), bins)] += 1
    return {"n": len(s), "quantiles": [[q, round(pct(s, q), 4)] for q in qs],
            "hist": {"from_ms": round(lo, 4), "bin_ms": round(width, 4), "counts": counts}}


def lateness_stats(late):
    return {"p50_ms": pct(late, 50), "p90_ms": pct(late, 90), "p99_ms": pct(late, 99),
            "max_ms": max(late) if late else None, "early": sum(1 for x in late if x < 0)}


TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(ppid, own CPU s, reaped children's CPU s) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, (utime + stime) / TICK, (cutime + cstime) / TICK


def tree_cpu(root):
    """CPU seconds of a process, its reaped children and its live children (PostgreSQL's backends)."""
    st = proc_stat(root)
    if not st:
        return 0.0
    total = st[1] + st[2]
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != root:
            c = proc_stat(int(d))
            if c and c[0] == root:
                total += c[1] + c[2]
    return total


def peak_rss_mib(pid, name=None):
    """VmHWM of a process; with `name`, only while its command name is that (read in the same snapshot of
    /proc/pid/status): a sandbox child between its spawn and its exec still shares the worker's memory
    (posix_spawn's vfork) and reports the worker's peak, which is not the child's."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if name is not None and fields.get("Name", "").strip() != name:
        return None
    hwm = fields.get("VmHWM")
    return int(hwm.split()[0]) / 1024 if hwm else None


def children(pid):
    """Live children of a process, from every thread's children list (a child may be forked by any thread)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


class RssSampler:
    """Peak RSS (VmHWM) of the processes watched (by role: producer, worker) and of each of their children
    (role sandbox: the workers' children once they are the sandbox binary), read every `every` seconds while a
    workload runs: a child that is replaced during the run counts with the peak of its last reading."""

    def __init__(self, every=1.0):
        self.every = every
        self.roots = {}  # pid -> role
        self.peak = {}  # pid -> (role, MiB)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def watch(self, pid, role):
        with self.lock:
            self.roots[pid] = role
        self.sample()

    def sample(self):
        with self.lock:
            roots = dict(self.roots)
        for pid, role in roots.items():
            for p, r in [(pid, role)] + [(c, "sandbox") for c in children(pid)]:
                mib = peak_rss_mib(p, "botjobs-sandbox" if r == "sandbox" else None)
                if mib is not None:
                    with self.lock:
                        self.peak[p] = (r, max(mib, self.peak.get(p, (r, 0))[1]))

    def _loop(self):
        while not self.done.wait(self.every):
            self.sample()

    def stop(self):
        self.sample()
        self.done.set()
        self.thread.join()
        by = {}
        for role, mib in self.peak.values():
            by.setdefault(role, []).append(mib)
        out = {f"{role}_mib": round(max(v), 1) for role, v in by.items()}
        if "sandbox" in by:
            out["sandbox_children"] = len(by["sandbox"])
        return out


def memory_summary(mems):
    """Per role, the median (min-max) over the repetitions of each repetition's peak."""
    roles = sorted({k for m in mems for k in m if k.endswith("_mib")})
    out = {r: summary([m.get(r) for m in mems]) for r in roles}
    kids = [m["sandbox_children"] for m in mems if "sandbox_children" in m]
    if kids:
        out["sandbox_children"] = max(kids)
    return out


class Meter:
    """CPU of PostgreSQL, the workers and Kafka, WAL and commits, between start() and stop()."""

    def __init__(self, b, s):
        self.b, self.s = b, s

    def pg_counters(self):
        """WAL bytes, transactions (read-only ones too) and WAL flushes to disk (the durable commits' cost)."""
        wal, xacts, syncs = self.s.sql(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn,"
            " (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
            " (SELECT wal_sync FROM pg_stat_wal)")[0]
        return int(wal), int(xacts), int(syncs)

    def start(self):
        self.t0 = time.monotonic()
        self.pg0, self.kafka0 = tree_cpu(self.b.pg_pid()), tree_cpu(self.b.kafka_pid())
        self.wal0, self.xacts0, self.syncs0 = self.pg_counters()

    def stop(self, jobs):
        """Call before the workers stop (their CPU is read from /proc)."""
        wall = time.monotonic() - self.t0
        pg, kafka = tree_cpu(self.b.pg_pid()) - self.pg0, tree_cpu(self.b.kafka_pid()) - self.kafka0
        workers = sum(tree_cpu(w.p.pid) for w in self.s.workers if w.alive())
        wal, xacts, syncs = self.pg_counters()
        rss = [peak_rss_mib(w.p.pid) for w in self.s.workers if w.alive()]
        k = 1000 / jobs
        return {"wall_s": round(wall, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
                "cpu_s_per_1k_jobs": {"postgres": round(pg * k, 3),
                "workers": round(workers * k, 3), "kafka": round(kafka * k, 3)},
                "wal_bytes_per_job": round((wal - self.wal0) / jobs),
                "transactions_per_1k_jobs": round((xacts - self.xacts0) * k, 1),
                "wal_syncs_per_1k_jobs": round((syncs - self.syncs0) * k, 1),
                "worker_peak_rss_mib": max(r for r in rss if r) if rss else None}


class Bench:
    """The services of one benchmark run: PostgreSQL and a Kafka broker, in workdir."""

    def __init__(self, workdir):
        self.dir = pathlib.Path(workdir)
        self.pg_port = conftest.free_port()
        self._pg("start", str(self.pg_port))
        self.pg = conftest.Postgres(self.pg_port)
        kport, cport = conftest.free_port(), conftest.free_port()
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "start", str(self.dir / "kafka"), str(kport),
                        str(cport)], check=True, capture_output=True)
        version = subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        self.kafka = conftest.Kafka(f"127.0.0.1:{kport}", version)
        self.preload = None

    def _pg(self, *args):
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), args[0], str(self.dir / "pg"), *args[1:]], check=True,
                       capture_output=True)

    def pg_version(self):
        import psycopg
        with psycopg.connect(self.pg.uri("postgres"), autocommit=True) as c:
            return c.execute("SHOW server_version").fetchone()[0]

    def pg_settings(self):
        """The durability settings in force (so a report says what it measured)."""
        import psycopg
        with psycopg.connect(self.pg.uri("postgres"), autocommit=True) as c:
            return {k: c.execute(f"SHOW {k}").fetchone()[0]
                    for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers")}

    def preload_stat_statements(self):
        """Restarts PostgreSQL with pg_stat_statements loaded (W6 reads the worker's claim cost from it).
        Only W6 needs it and it runs last, so the other workloads measure a PostgreSQL without it."""
        if self.preload:
            return
        conf = self.dir / "pg" / "postgresql.conf"
        self._pg("stop")
        with open(conf, "a") as f:
            f.write("\n# bench.py (W6)\nshared_preload_libraries = 'pg_stat_statements'\n"
                    "pg_stat_statements.track = top\n")
        self._pg("start", str(self.pg_port))
        self.preload = "pg_stat_statements"

    def pg_pid(self):
        return int((self.dir / "pg" / "postmaster.pid").read_text().split()[0])

    def kafka_pid(self):
        return int((self.dir / "kafka" / "kafka.pid").read_text().split()[0])

    def close(self):
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "stop", str(self.dir / "kafka")])
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "destroy", str(self.dir / "pg")])

    def stack(self, leads, partitions=6):
        """A database with the bench bot (bench/bot) and `leads` leads, topics with `partitions` partitions."""
        d = self.dir / uuid.uuid4().hex[:8]
        d.mkdir()
        s = conftest.Stack(self.pg, self.kafka, d)
        s.env["BOTJOBS_PARTITIONS"] = str(partitions)
        s.ctl("load", str(ROOT / "bench" / "bot"))
        if leads:
            s.sql("INSERT INTO leads (bot_id, id) SELECT %s, i FROM generate_series(1, %s) i", BOT, leads)
        return s


def reset(s):
    # A stopped worker's backend may still be running its last statement (PostgreSQL notices a gone client
    # only when it sends): it would hold the TRUNCATE for as long as that statement runs (minutes, seen in w4k).
    s.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
          " AND application_name LIKE 'botjobs-worker%'")
    s.sql("TRUNCATE jobs, job_runs, outbox")
    s.sql("UPDATE leads SET attributes = '{}' WHERE bot_id = %s", BOT)
    s.sql("VACUUM ANALYZE jobs")


def stop_workers(s):
    for w in s.workers:
        w.stop()
    s.procs = [p for p in s.procs if p not in s.workers]
    s.workers = []


def tool(name):
    exe = TOOLS / name
    subprocess.run(["make", "-s", str(exe.relative_to(ROOT))], cwd=ROOT, check=True)
    return exe
