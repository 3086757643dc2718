"""
checker.py - compares what the clients were told (the ledger) with what happened (PostgreSQL and the
Kafka topics) after a chaos scenario, and says what was lost, duplicated or out of order.

    check(history) -> result      a pure function over the history chaos.py collects (history.json);
                                  chaos.py's self_check feeds it doctored histories every run
    python tests/chaos/checker.py RUN/SCENARIO/history.json   checks a stored history again

The evidence, per request (cid = the client's request number, in script_request_params):
- one-shot jobs (immediate, delayed, idempotent): exactly one done run in job_runs, the job's
  counter lead.n<cid> == 1, exactly one "<cid>:0" in the lead's effect log (seq), exactly one outbound
  message id for (job, run 1) and a job.done event for it;
- periodic jobs: as many runs as due times passed until the cancel (within a tolerance for the
  faults' downtime, never more), one distinct due time per run, counter == runs, one log entry and one
  message id per run;
- broadcasts: every lead's counter lead.b<cid> == 1 and one message id per lead.
Copies of one message id in a topic are what an at-least-once relay may do: counted (redelivered),
not failures. Two message ids for one (job, run, lead) are a duplicated effect.

Per lead: the effect log is the order of the committed runs (job_runs by start), runs never overlap,
and no run went before a job of the same lead that was due earlier and already stored (committed)
when the run was claimed. The outbound messages of a lead reach its partition in the same order.

Lateness = start of the run - the due time (the one the 202 promised for one-shot jobs). Recovery of
a fault = from its injection until the API answered 202 again and every run it delayed by more than
LATE seconds had finished; a scenario's recovery is its worst fault's.
"""
import collections
import json
import math
import sys

LATE = 1.0  # seconds: a run later than this counts as delayed by the fault (recovery time)
ORDER_MARGIN = 0.25  # seconds between a job's commit and another run's claim before order is judged
ONE_SHOT = ("immediate", "delayed", "idempotent")


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


class Result:
    def __init__(self):
        self.counts = collections.Counter()
        self.problems = []  # (category, text)

    def add(self, category, text):
        self.counts[category] += 1
        if sum(1 for c, _ in self.problems if c == category) < 50:
            self.problems.append((category, text))


def _percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(math.ceil(p / 100.0 * len(xs))) - 1)]


def check(h):
    res = Result()
    ledger, jobs, runs = h["ledger"], h["jobs"], h["runs"]
    interval = h.get("interval", 3)
    leads_attrs = {int(k): v for k, v in h["leads"].items()}

    # ---- what the clients were told -------------------------------------------------------------
    reqs = {}
    for a in ledger:
        r = reqs.setdefault(a["cid"], {"kind": a["kind"], "lead": a["lead"], "attempts": [], "job_ids": set(),
                                       "due": None})
        r["attempts"].append(a)
        if a["status"] == 202:
            r["job_ids"].add(a["job_id"])
            if r["due"] is None:
                r["due"] = a["due"]
    accepted = {cid: r for cid, r in reqs.items() if r["job_ids"]}
    for cid, r in accepted.items():
        if len(r["job_ids"]) > 1:
            res.add("duplicated", f"cid {cid}: one Idempotency-Key, {len(r['job_ids'])} job ids {sorted(r['job_ids'])}")

    # ---- what happened --------------------------------------------------------------------------
    jobs_by_id = {j["job_id"]: j for j in jobs}
    jobs_by_cid = collections.defaultdict(list)
    for j in jobs:
        if j.get("cid") is not None:
            jobs_by_cid[_int(j["cid"])].append(j)
    done_runs = collections.defaultdict(list)
    for r in runs:
        if r["outcome"] == "done":
            done_runs[r["job_id"]].append(r)
    for v in done_runs.values():
        v.sort(key=lambda r: r["run_no"])
    msgs = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))  # job -> (run, lead) -> id -> n
    for m in h["outbound"]:
        msgs[m["job_id"]][(m["run"], m["lead_id"])][m["message_id"]] += 1
    done_events = collections.Counter((e["job_id"], e.get("run")) for e in h["events"] if e["type"] == "job.done")
    claims = collections.defaultdict(list)  # (job, run) -> claim times (job.started events)
    for e in h["events"]:
        if e["type"] == "job.started" and e.get("at") is not None:
            claims[(e["job_id"], e.get("run"))].append(e["at"])
    seq_entries = collections.defaultdict(list)  # cid -> [(lead, k)]
    for lead, attrs in leads_attrs.items():
        for entry in attrs.get("seq") or []:
            c, _, k = str(entry).partition(":")
            seq_entries[_int(c)].append((lead, _int(k)))
    in_jobs_topic = set(h.get("jobs_topic", []))

    for cid, js in jobs_by_cid.items():
        if cid not in reqs:
            res.add("duplicated", f"cid {cid}: job {js[0]['job_id']} that no client asked for")
        elif len(js) > 1:
            res.add("duplicated", f"cid {cid}: stored as {len(js)} jobs {[j['job_id'] for j in js]}")
        elif cid not in accepted:
            res.counts["unacked_stored"] += 1
            statuses = {str(a["status"]) for a in reqs[cid]["attempts"]}
            if js[0]["state"] == "done" or done_runs.get(js[0]["job_id"]):
                res.counts["unacked_ran"] += 1
                if statuses == {"503"}:
                    res.add("false_503", f"cid {cid}: answered 503 (nothing accepted), yet job {js[0]['job_id']} ran")
    for cid in seq_entries:
        if cid not in reqs:
            res.add("duplicated", f"cid {cid}: in a lead's effect log, but no client asked for it")

    lateness = []
    late_runs = []  # (due, started, finished) of every run, for recovery times
    res.counts["accepted"] = len(accepted)
    for cid, r in sorted(accepted.items()):
        job_id = sorted(r["job_ids"])[0]
        j = jobs_by_id.get(job_id)
        kind = r["kind"]
        if j is None:
            res.add("lost", f"cid {cid} ({kind}): job {job_id} answered 202 but never stored"
                            f" ({'in' if job_id in in_jobs_topic else 'NOT in'} the jobs topic)")
            continue
        if kind == "broadcast":
            _check_broadcast(res, h, cid, j, leads_attrs, msgs, claims, r, lateness)
            continue
        dr = done_runs.get(job_id, [])
        lead = r["lead"]
        n = _int(leads_attrs.get(lead, {}).get(f"n{cid}"))
        entries = seq_entries.get(cid, [])
        if any(ld != lead for ld, _ in entries):
            res.add("duplicated", f"cid {cid}: effect logged on another lead: {entries}")
        ks = collections.Counter(k for _, k in entries)
        for run in dr:
            late_runs.append((run["due"], run["started"], run["finished"]))
        if dr:
            res.counts["jobs_run"] += 1
            res.counts["runs"] += len(dr)
        if kind in ONE_SHOT:
            label = f"cid {cid} ({kind}, job {job_id}, lead {lead})"
            if not dr:
                res.add("lost", f"{label}: no run; state {j['state']}, last error {j.get('last_error')!r}")
                continue
            if len(dr) > 1:
                res.add("duplicated", f"{label}: {len(dr)} done runs")
            if n != len(dr):
                res.add("duplicated" if n > len(dr) else "lost", f"{label}: counter n{cid} = {n}, runs {len(dr)}")
            _check_log(res, label, ks, len(dr))
            _check_messages(res, label, msgs.get(job_id, {}), [(run["run_no"], lead) for run in dr])
            _check_events(res, label, done_events, job_id, [run["run_no"] for run in dr])
            due = r["due"] if r["due"] is not None else dr[0]["due"]
            lateness.append(dr[0]["started"] - due)
        else:  # periodic
            label = f"cid {cid} (periodic, job {job_id}, lead {lead})"
            due0 = r["due"]
            cancel_sent, cancel_done = h["t_cancel_sent"], h["t_cancel_done"]
            most = int(math.floor((cancel_done - due0) / interval)) + 1 if cancel_done >= due0 else 0
            outage = sum(max(0.0, e["healthy"] - e["inject"]) for e in h.get("faults", []))
            # From the first run on (the job may have been stored late: that is lateness, not loss).
            first = dr[0]["started"] if dr else due0
            least = int(math.floor((cancel_sent - max(due0, first)) / interval)) + 1 - 1 - int(math.ceil(outage / interval))
            dues = {round(run["due"], 3) for run in dr}
            if len(dr) > most:
                res.add("duplicated", f"{label}: {len(dr)} runs, but only {most} due times passed")
            if len(dues) < len(dr):
                res.add("duplicated", f"{label}: {len(dr)} runs for {len(dues)} due times")
            if len(dr) < max(1, least):
                res.add("lost", f"{label}: {len(dr)} runs, expected at least {max(1, least)} (of {most} due)")
            if n != len(dr):
                res.add("duplicated" if n > len(dr) else "lost", f"{label}: counter n{cid} = {n}, runs {len(dr)}")
            _check_log(res, label, ks, len(dr))
            _check_messages(res, label, msgs.get(job_id, {}), [(run["run_no"], lead) for run in dr])
            _check_events(res, label, done_events, job_id, [run["run_no"] for run in dr])
            lateness.extend(run["started"] - run["due"] for run in dr)

    _check_order(res, h, accepted, jobs_by_id, jobs_by_cid, runs, leads_attrs, claims)

    out = dict(res.counts)
    for k in ("accepted", "jobs_run", "runs", "lost", "duplicated", "redelivered", "order", "unacked_stored",
              "unacked_ran", "false_503", "events_lost", "events_redelivered"):
        out.setdefault(k, 0)
    out["requests"] = len(ledger)
    out["not_accepted"] = sum(1 for r in reqs.values() if not r["job_ids"])
    out["failed_attempts"] = collections.Counter(str(a["status"]) for a in ledger if a["status"] != 202)
    out["max_lateness"] = max(lateness) if lateness else None
    out["p99_lateness"] = _percentile(lateness, 99)
    out["p50_lateness"] = _percentile(lateness, 50)
    out["recovery"] = _recovery(h, late_runs)
    out["crashes"] = len(h.get("crashes", []))
    out["unclean_exits"] = len(h.get("unclean", []))
    out["sanitizer"] = len(h.get("sanitizer", []))
    out["outbox_left"] = h.get("outbox_left", 0)
    out["nemesis_errors"] = len(h.get("nemesis_errors", []))
    out["faults"] = len(h.get("faults", []))
    out["problems"] = [f"{c}: {t}" for c, t in res.problems]
    for c in h.get("crashes", []):
        out["problems"].append(f"crash: {c['name']} exited {c['rc']} without being asked\n{c['log']}")
    for c in h.get("unclean", []):
        out["problems"].append(f"unclean exit: {c['name']} exited {c['rc']} on SIGTERM\n{c['log']}")
    for s in h.get("sanitizer", []):
        out["problems"].append(f"sanitizer: {s}")
    for j in h.get("cancels_lost", []):
        out["problems"].append(f"lost: the cancel (DELETE) of periodic job {j} did not take effect within a minute")
    out["lost"] += len(h.get("cancels_lost", []))
    for e in h.get("nemesis_errors", []):
        out["problems"].append(f"nemesis: {e}")
    out["ok"] = not (out["lost"] or out["duplicated"] or out["order"] or out["false_503"] or out["crashes"]
                     or out["unclean_exits"] or out["sanitizer"] or out["outbox_left"] or out["nemesis_errors"]
                     or out["events_lost"])
    return out


def _check_log(res, label, ks, nruns):
    """The lead's effect log holds "<cid>:k" once for each k < runs."""
    for k in range(nruns):
        if ks.get(k, 0) == 0:
            res.add("lost", f"{label}: effect log lacks run {k + 1}")
        elif ks[k] > 1:
            res.add("duplicated", f"{label}: effect log has run {k + 1} {ks[k]} times")
    for k in ks:
        if k >= nruns:
            res.add("duplicated", f"{label}: effect log has run {k + 1}, but only {nruns} run(s) committed")


def _check_messages(res, label, by_run, expected):
    """One message id per (run, lead) that committed; copies of it are redeliveries."""
    for key in expected:
        ids = by_run.get(key, {})
        if not ids:
            res.add("lost", f"{label}: no outbound message for run {key[0]}")
        elif len(ids) > 1:
            res.add("duplicated", f"{label}: {len(ids)} message ids for run {key[0]}: {sorted(ids)}")
        res.counts["redelivered"] += sum(ids.values()) - len(ids)
    for key in by_run:
        if key not in expected:
            res.add("duplicated", f"{label}: outbound message of run {key[0]} (lead {key[1]}), which did not commit")


def _check_events(res, label, done_events, job_id, run_nos):
    for n in run_nos:
        c = done_events.get((job_id, n), 0)
        if c == 0:
            res.add("events_lost", f"{label}: no job.done event for run {n}")
        res.counts["events_redelivered"] += max(0, c - 1)


def _check_broadcast(res, h, cid, j, leads_attrs, msgs, claims, r, lateness):
    label = f"cid {cid} (broadcast, job {j['job_id']})"
    if j["state"] != "done":
        res.add("lost", f"{label}: state {j['state']}, {j.get('bcast_done')} of {j.get('bcast_total')} leads,"
                        f" last error {j.get('last_error')!r}")
        return
    if j["runs"] != 1:
        res.add("duplicated", f"{label}: {j['runs']} runs")
    res.counts["jobs_run"] += 1
    by = msgs.get(j["job_id"], {})
    for lead in h["leads_expected"]:
        b = _int(leads_attrs.get(lead, {}).get(f"b{cid}"))
        if b == 0:
            res.add("lost", f"{label}: lead {lead} not reached")
        elif b > 1:
            res.add("duplicated", f"{label}: lead {lead} reached {b} times")
        else:
            res.counts["runs"] += 1
        ids = by.get((1, lead), {})
        if b and not ids:
            res.add("lost", f"{label}: no outbound message for lead {lead}")
        elif len(ids) > 1:
            res.add("duplicated", f"{label}: {len(ids)} message ids for lead {lead}")
        res.counts["redelivered"] += sum(ids.values()) - len(ids)
    for (run, lead) in by:
        if run != 1 or lead not in h["leads_expected"]:
            res.add("duplicated", f"{label}: message for run {run}, lead {lead}")
    starts = claims.get((j["job_id"], 1))
    if starts and r["due"] is not None:
        lateness.append(min(starts) - r["due"])


def _check_order(res, h, accepted, jobs_by_id, jobs_by_cid, runs, leads_attrs, claims):
    """Per lead: the effect log is the order of the committed runs, runs do not overlap, no run went
    before an earlier-due job of its lead that was already committed, outbound messages in that order."""
    ingest = h.get("ingest", {})
    # A commit's timestamp is taken before the commit becomes visible; a fault (a SIGSTOPped or killed
    # PostgreSQL) between the two makes it visible only after the fault. Within a fault's window, a
    # job counts as available from the fault's end.
    windows = [(e["inject"], e.get("healthy", e["inject"])) for e in h.get("faults", [])]

    def available(t):
        if t is None:
            return None
        for lo, hi in windows:
            if lo <= t <= hi:
                return hi
        return t
    committed_run = {(r["job_id"], r["run_no"]): r for r in runs if r["outcome"] == "done"}
    runs_by_lead = collections.defaultdict(list)
    for r in runs:
        j = jobs_by_id.get(r["job_id"])
        if r["outcome"] == "done" and j and j.get("kind") == "trigger" and r["lead_id"] is not None:
            runs_by_lead[r["lead_id"]].append(r)
    first_msg = collections.defaultdict(list)  # lead -> [(job, run)] in partition order, first copies
    seen = set()
    for m in sorted(h["outbound"], key=lambda m: (m["partition"], m["offset"])):
        j = jobs_by_id.get(m["job_id"])
        if not j or j.get("kind") != "trigger" or m["message_id"] in seen:
            continue
        seen.add(m["message_id"])
        first_msg[m["lead_id"]].append((m["job_id"], m["run"]))

    for lead, attrs in leads_attrs.items():
        log_runs = []
        for entry in attrs.get("seq") or []:
            c, _, k = str(entry).partition(":")
            js = jobs_by_cid.get(_int(c))
            if js:
                log_runs.append((js[0]["job_id"], _int(k) + 1))
        by_start = sorted(runs_by_lead.get(lead, []), key=lambda r: r["started"])
        if log_runs and [(r["job_id"], r["run_no"]) for r in by_start] != log_runs \
                and sorted(log_runs) == sorted((r["job_id"], r["run_no"]) for r in by_start):
            res.add("order", f"lead {lead}: effects applied in another order than the runs started")
        for a, b in zip(by_start, by_start[1:]):
            if a["finished"] > b["started"] + 1e-6:
                res.add("order", f"lead {lead}: runs overlap: job {a['job_id']} run {a['run_no']} until"
                                 f" {a['finished']:.3f}, job {b['job_id']} run {b['run_no']} from {b['started']:.3f}")
        # Runs do not overlap between claim and commit either: in commit order, each run was claimed
        # after the one before it committed (job_runs' start and finish are the script's, inside).
        by_commit = sorted((r for r in runs_by_lead.get(lead, []) if r.get("committed") is not None),
                           key=lambda r: r["committed"])
        for a, b in zip(by_commit, by_commit[1:]):
            cl = [t for t in claims.get((b["job_id"], b["run_no"]), []) if t <= b["started"] + 1e-6]
            if cl and max(cl) < a["committed"] - 0.001:
                res.add("order", f"lead {lead}: job {b['job_id']} run {b['run_no']} claimed at {max(cl):.3f}, while"
                                 f" job {a['job_id']} run {a['run_no']} ran (committed {a['committed']:.3f})")
        # No run before an earlier-due job of the lead that was committed when the run was claimed.
        info = []
        for job_id, run_no in log_runs:
            r = committed_run.get((job_id, run_no))
            if r is None:
                continue
            avail = available(ingest.get(job_id) if run_no == 1
                              else (committed_run.get((job_id, run_no - 1)) or {}).get("committed"))
            cl = [t for t in claims.get((job_id, run_no), []) if t <= r["started"] + 1e-6]
            info.append((job_id, run_no, r["due"], avail, max(cl) if cl else r["started"]))
        for i in range(len(info)):
            for k in range(i + 1, len(info)):
                ji, ri, due_i, _, claim_i = info[i]
                jk, rk, due_k, avail_k, _ = info[k]
                if due_k < due_i - 1e-6 and avail_k is not None and avail_k + ORDER_MARGIN < claim_i:
                    res.add("order", f"lead {lead}: job {ji} run {ri} (due {due_i:.3f}, claimed {claim_i:.3f}) ran"
                                     f" before job {jk} run {rk} (due {due_k:.3f}, committed {avail_k:.3f})")
        msg_order = [x for x in first_msg.get(lead, []) if x in set(log_runs)]
        if msg_order != [x for x in log_runs if x in set(msg_order)]:
            res.add("order", f"lead {lead}: outbound messages reached Kafka in another order than the runs")


def _recovery(h, late_runs):
    """Worst fault: from injection until the API accepted again and the runs it delayed had finished."""
    faults = sorted(h.get("faults", []), key=lambda e: e["inject"])
    if not faults:
        return None
    worst = 0.0
    end = h.get("t_cancel_sent", float("inf"))
    for i, e in enumerate(faults):
        t0 = e["inject"]
        t1 = faults[i + 1]["inject"] if i + 1 < len(faults) else end
        failed = [a for a in h["ledger"] if t0 <= a["sent"] < t1 and a["status"] != 202]
        api = max((a["done"] for a in failed), default=t0) - t0
        delayed = [fin for due, start, fin in late_runs if start >= t0 and due < t1 and start - due > LATE]
        run = max(delayed, default=t0) - t0
        e["recovery"] = max(api, run)
        worst = max(worst, e["recovery"])
    return worst


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: checker.py HISTORY.json\n")
        return 2
    with open(argv[1]) as f:
        h = json.load(f)
    out = check(h)
    problems = out.pop("problems")
    print(json.dumps(out, indent=1, default=str))
    for p in problems:
        print(p)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
