"""
plots.py - the PNG plots of a bench report, drawn with gnuplot (Debian gnuplot-nox; make bench installs it):
  <stem>-w1-throughput.png   W1/W1b: runs finished per second over each run (the median repetition)
  <stem>-lateness-cdf.png    W2, W6 (with the backlog) lateness and W3 HTTP send -> trigger start, as CDFs
  <stem>-<w>-hist.png        the same distributions as histograms, one per workload
  <stem>-w4-knee.png         W4: p99 of the 202s against the offered rate, per connection count
Returns {name: file name} of what it drew.
"""
import pathlib
import shutil
import subprocess
import tempfile

PNG = "set terminal pngcairo size 900,560 font ',10'\n"


def gnuplot(script, workdir):
    subprocess.run(["gnuplot"], input=script.encode(), check=True, cwd=workdir, capture_output=True)


def dist_of(r):
    """(title, distribution) of a result that has one."""
    if r["name"] in ("w2", "w6") and r.get("lateness"):
        label = "W2 lateness" if r["name"] == "w2" else f"W6 lateness, {r['backlog']:,} future jobs stored"
        return label, r["lateness"]
    if r["name"] == "w3" and r.get("e2e"):
        return f"W3 HTTP send -> trigger start, {r['rate']:,}/s", r["e2e"]
    return None


def draw(results, stem):
    """Draws what the results allow next to stem (a path without suffix); returns {kind: file name}."""
    if not shutil.which("gnuplot"):
        raise RuntimeError("gnuplot is missing: BOTJOBS_DEPS_BENCH=1 bash scripts/deps.sh (make bench does it), "
                           "or bench/run --no-plots")
    # gnuplot runs in a temporary folder: a relative stem (bench/run --out build/bench) must be made absolute.
    stem = pathlib.Path(stem).resolve()
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-plots-") as tmp:
        tmp = pathlib.Path(tmp)

        series = [r for r in results if r["name"] in ("w1", "w1b") and r.get("timeline")]
        if series:
            plots = []
            for i, r in enumerate(series):
                (tmp / f"w1-{i}.dat").write_text("".join(f"{t} {v}\n" for t, v in r["timeline"]))
                dash = "dt 2 " if r["name"] == "w1b" else ""
                plots.append(f"'w1-{i}.dat' using 1:2 with lines lw 2 {dash}title '{r['name']}: {r['trigger']} trigger, "
                             f"{r['workers']} worker(s)'")
            f = f"{stem.name}-w1-throughput.png"
            gnuplot(PNG + f"set output '{stem.parent / f}'\nset title 'W1/W1b: due jobs run per second'\n"
                    "set xlabel 'seconds since the first run started'\nset ylabel 'runs finished per second'\n"
                    "set grid\nset key outside bottom center horizontal maxrows 3\nset yrange [0:*]\n"
                    "plot " + ", ".join(plots) + "\n", tmp)
            out["w1_throughput"] = f

        dists = [d for d in (dist_of(r) for r in results) if d]
        if dists:
            plots = []
            for i, (title, d) in enumerate(dists):
                (tmp / f"cdf-{i}.dat").write_text("".join(f"{max(v, 0.001)} {q / 100}\n" for q, v in d["quantiles"]))
                plots.append(f"'cdf-{i}.dat' using 1:2 with lines lw 2 title '{title} (n={d['n']:,})'")
            f = f"{stem.name}-lateness-cdf.png"
            gnuplot(PNG + f"set output '{stem.parent / f}'\nset title 'Lateness (run start - due time) and "
                    "end-to-end latency, CDF'\nset logscale x\nset xlabel 'ms (log scale)'\n"
                    "set ylabel 'fraction of jobs'\nset grid\nset key bottom right\nset yrange [0:1]\n"
                    "plot " + ", ".join(plots) + "\n", tmp)
            out["lateness_cdf"] = f
            for r in results:
                d = dist_of(r)
                if not d:
                    continue
                title, dist = d
                h = dist["hist"]
                (tmp / "h.dat").write_text("".join(f"{h['from_ms'] + (i + 0.5) * h['bin_ms']} {c}\n"
                                                   for i, c in enumerate(h["counts"])))
                f = f"{stem.name}-{r['name']}-hist.png"
                gnuplot(PNG + f"set output '{stem.parent / f}'\nset title '{title}: histogram (last bin: "
                        "everything past the 99.9th percentile)'\nset xlabel 'ms'\nset ylabel 'jobs'\nset grid\n"
                        f"set style fill solid 0.6\nset boxwidth {h['bin_ms']}\n"
                        "plot 'h.dat' using 1:2 with boxes notitle\n", tmp)
                out[f"{r['name']}_hist"] = f

        w4 = next((r for r in results if r["name"] == "w4"), None)
        if w4:
            plots = []
            for i, (conns, c) in enumerate(w4["conns"].items()):
                runs = sorted(c["runs"], key=lambda x: x["capacity_per_s"])
                steps = runs[len(runs) // 2]["steps"]
                (tmp / f"w4-{i}.dat").write_text("".join(f"{st['rate']} {max(st['p99_ms'], 0.01)}\n" for st in steps))
                plots.append(f"'w4-{i}.dat' using 1:2 with linespoints lw 2 title '{conns} connections'")
            f = f"{stem.name}-w4-knee.png"
            gnuplot(PNG + f"set output '{stem.parent / f}'\nset title 'W4: p99 of the 202 answers against the "
                    "offered rate (open loop)'\nset logscale y\nset xlabel 'offered schedule calls per second'\n"
                    f"set ylabel 'p99 ms (log scale)'\nset grid\nset key top left\n"
                    f"set arrow from graph 0, first {w4['p99_limit_ms']} to graph 1, first {w4['p99_limit_ms']} "
                    "nohead dt 2\nplot " + ", ".join(plots) + "\n", tmp)
            out["w4_knee"] = f
    return out
