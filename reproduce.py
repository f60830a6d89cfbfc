"""Regenerate every figure of [NI] (and [LLR] Figure 3), named after the paper's figure numbers.

    python reproduce.py [--list] [--quick] [--only ni4a,ni8] [--out FOLDER] [--results FOLDER] [--jobs J]

Each ID (`--list` prints them with their commands) is one figure of docs/reference.md §10, made
with that figure's settings: planted direction optw 1 for the skip figures (the original code's
default) except ni6, the planted k and option, sigma in {0, 0.05, 0.1, 0.2}, 5 trials for the
convex programs and 10 for network training, and the paper's style (plot_phase.py --style paper:
filled contours, linear 0-1). Nonconvex figures show both training protocols, the paper's
(optimizer re-created every epoch) in the first row, the steady one below. Distance figures of
the minimal-norm programs hatch the cells where the optimum was not unique on some trial.

Beyond the paper, the scaling study (STUDY, RATIOS): fss-skip, fss-norm and universality sweep
ratio grids (n = round(ratio d) for each d) and plot_phase.py --fit adds their finite-size
analysis (ID_finite.csv, ID_finite.png: centre and width per d, the width's power law, the
collapse).

The figures are made by running the documented scripts (the sweeps, then plot_phase.py,
two_clusters.py or plot_llr.py), so every sweep resumes from its SQLite cell store: after an
interruption the same command skips the finished cells. Paper scale runs them as subprocesses;
--quick (a tiny grid for CI) runs them in this process, one import for all. Written into --out
(default figures/, with --quick figures/quick/): ID.png, ID_fit.csv (the logistic transition fit
of each recovery figure), summary.md and summary.csv (one row per panel), manifest.json (the
commands, result files and seconds of every ID).
"""
import argparse
import contextlib
import csv
import io
import json
import os
import runpy
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planted import results
from planted.cli import Parser, positive_int

ROOT = Path(__file__).resolve().parent
SIGMAS = ("0", "0.05", "0.1", "0.2")
ABOVE = 3  # "above the transition": n >= 3d, where the relaxed skip program recovers w.h.p. (§7)
LLR_TOL = 1e-6  # a run "recovers" the [LLR] target when its test MSE is below this

# program: trials of a convex program or condition; train: trials of network training.
SCALES = {
    "paper": dict(grid=["--n", "400", "--d", "100", "--step", "10"], program=5, train=10, train_flags=[],
                  clusters_flags=[], llr_flags=[]),
    # seconds per sweep, for CI: 8 x 2 cells (d = 5, 10: the transition n = 2d lies inside the
    # grid of n for both); the transition checks of the tests use ni6's optx 0 panel, which gets
    # more trials (HEADLINE)
    "quick": dict(grid=["--n", "40", "--d", "10", "--step", "5"], program=1, train=1, train_flags=["--epochs", "30"],
                  clusters_flags=["--d", "20,40", "--draws", "300"],
                  llr_flags=["--widths", "1", "--sizes", "2:20:6", "--steps", "300", "--sample", "1"]),
}
HEADLINE = dict(quick=10, paper=5)

# The scaling study (beyond the paper): ratio grids, n = round(ratio d), per scale a grid of d
# with its trials, and per program the range of n/d around its transition (docs/reference.md §7).
STUDY = {
    "paper": dict(fss=(["--dims", "25,50,100,200,400"], 20), norm=(["--dims", "20,40,80,160"], 20),
                  kinds=(["--dims", "25,50,100"], 20)),
    "quick": dict(fss=(["--dims", "5,10"], 3), norm=(["--dims", "5,10"], 3), kinds=(["--dims", "5,10"], 3)),
}
RATIOS = {
    "paper": dict(skip="1.5:2.5:0.05", exact="0.5:1.5:0.05", norm="3:4.6:0.1", kinds_norm="2:5:0.15"),
    "quick": dict(skip="1.5:2.5:0.25", exact="0.5:1.5:0.25", norm="3:4.6:0.4", kinds_norm="2:5:0.75"),
}


@dataclass
class Panel:
    """One heatmap: the sweep (script and its own flags) and the metric drawn."""
    label: str
    script: str
    flags: tuple
    metric: str
    grid: str = ""    # a STUDY grid (a ratio grid) instead of the paper's (n, d) grid
    ratios: str = ""  # its RATIOS range


@dataclass
class Figure:
    paper: str  # the paper's figure number
    title: str
    kind: str  # rate, distance, clusters, llr, finite (a ratio-grid rate and its finite-size analysis)
    panels: list = field(default_factory=list)
    cols: int = 0
    theory: bool = False  # the line n = 2d (skip programs)
    fit_from: float = 0.0
    differs: str = ""  # where ours is known to differ from the paper's figure, and why


def sigma_panels(script, flags, metric, prefix=""):
    return [Panel(f"{prefix}sigma {s}", script, (*flags, "--sigma", s), metric) for s in SIGMAS]


def protocol_panels(script, flags, metric):
    """Both training protocols, the paper's first (the default, no flag) and the steady one."""
    return (sigma_panels(script, flags, metric, "paper protocol, ")
            + sigma_panels(script, (*flags, "--protocol", "steady"), metric, "steady protocol, "))


def skip_optx(optw):
    """The relaxed skip program on the four data kinds (defaults left out of the flags, so that
    the optx 0 sweep is the one of ni4a for optw 1)."""
    flags = ("--optw", "1") if optw else ()
    return [Panel(f"optx {x}", "rec_rate_skip.py", (*flags, *(("--optx", str(x)) if x else ())), "rec")
            for x in range(4)]


def kinds_panels():
    """Every data kind (data.OPTX), for the relaxed skip and the normalization-layer (k = 2) programs."""
    from planted.data import OPTX
    skip = [Panel(f"relaxed skip, optx {x} ({name})", "rec_rate_skip.py", ("--optx", str(x)), "rec", "kinds", "skip")
            for x, name in OPTX.items()]
    norm = [Panel(f"normalization k = 2, optx {x} ({name})", "rec_rate_norm.py", ("--neu", "2", "--optx", str(x)),
                  "rec", "kinds", "kinds_norm") for x, name in OPTX.items()]
    return skip + norm


W1 = ("--optw", "1")
FIGURES = {
    "ni2": Figure("2", "Test distance of the exact ReLU + skip program (planted linear neuron, optw 1)", "distance",
                  [Panel("exact program", "minnrm_skip.py", ("--form", "exact", *W1), "dis_test")]),
    "ni4a": Figure("4a", "Recovery rate of the relaxed ReLU + skip program (optw 1)", "rate",
                   [Panel("relaxed program", "rec_rate_skip.py", W1, "rec")], theory=True, fit_from=1),
    "ni4b": Figure("4b", "Recovery rate of the exact ReLU + skip program (optw 1)", "rate",
                   [Panel("exact program", "rec_rate_skip.py", ("--form", "exact", *W1), "rec")], theory=True,
                   fit_from=1),
    "ni5a": Figure("5a", "Recovery rate of the relaxed normalization-layer program, k = 2", "rate",
                   [Panel("k = 2", "rec_rate_norm.py", ("--neu", "2"), "rec")]),
    "ni5b": Figure("5b", "Recovery rate of the relaxed normalization-layer program, k = 3", "rate",
                   [Panel("k = 3", "rec_rate_norm.py", ("--neu", "3"), "rec")]),
    "ni6": Figure("6", "Recovery rate of the relaxed skip program, data kinds optx 0-3 (optw 0)", "rate",
                  skip_optx(0), cols=2, theory=True),
    "ni7": Figure("7", "dis_abs of the relaxed skip program under label noise (optw 1)", "distance",
                  sigma_panels("minnrm_skip.py", W1, "dis_abs"), cols=2),
    "ni8": Figure("8", "Test distance of the trained ReLU + skip network under label noise (optw 1)", "distance",
                  protocol_panels("ncvx_train_skip.py", W1, "dis_test"), cols=4),
    "ni9": Figure("9", "dis_abs of the relaxed normalization-layer program, k = 2, the pair (u, -u)", "distance",
                  sigma_panels("minnrm_norm.py", ("--neu", "2", "--optw", "2"), "dis_abs"), cols=2),
    "ni10": Figure("10", "Normalization-layer irrepresentability condition (normk) holds, k = 2 and 3", "rate",
                   [Panel(f"k = {k}", "nic.py", ("--condition", "normk", "--neu", str(k)), "holds") for k in (2, 3)]),
    "ni18": Figure("18", "Recovery rate of the relaxed skip program, data kinds optx 0-3 (optw 1)", "rate",
                   skip_optx(1), cols=2, theory=True, fit_from=1),
    "ni19": Figure("19", "Test distance of the relaxed skip program under label noise (optw 1)", "distance",
                   sigma_panels("minnrm_skip.py", W1, "dis_test"), cols=2),
    "ni20": Figure("20", "dis_abs of the skip training program (weight decay) under label noise (optw 1)", "distance",
                   sigma_panels("cvx_train_skip.py", W1, "dis_abs"), cols=2),
    "ni21": Figure("21", "Test distance of the skip training program under label noise (optw 1)", "distance",
                   sigma_panels("cvx_train_skip.py", W1, "dis_test"), cols=2),
    "ni22": Figure("22", "Recovery rate of the relaxed normalization-layer program, k = 1", "rate",
                   [Panel("k = 1", "rec_rate_norm.py", (), "rec")]),
    "ni23": Figure("23", "dis_abs of the relaxed normalization-layer program, k = 1, under label noise", "distance",
                   sigma_panels("minnrm_norm.py", (), "dis_abs"), cols=2),
    "ni24": Figure("24", "dis_abs of the normalization-layer training program, k = 1, under label noise", "distance",
                   sigma_panels("cvx_train_norm.py", (), "dis_abs"), cols=2),
    "ni25": Figure("25", "Test distance of the trained normalization-layer network, k = 1", "distance",
                   protocol_panels("ncvx_train_norm.py", (), "dis_test"), cols=4),
    "ni26": Figure("26", "Recovery rate of the relaxed normalization-layer program: planted e_i and the pair", "rate",
                   [Panel("k = 2, e_1, e_2", "rec_rate_norm.py", ("--neu", "2", "--optw", "1"), "rec"),
                    Panel("k = 3, e_1, e_2, e_3", "rec_rate_norm.py", ("--neu", "3", "--optw", "1"), "rec"),
                    Panel("k = 2, (u, -u)", "rec_rate_norm.py", ("--neu", "2", "--optw", "2"), "rec")]),
    "ni27": Figure("27", "dis_abs of the relaxed normalization-layer program, k = 2 Gaussian", "distance",
                   sigma_panels("minnrm_norm.py", ("--neu", "2"), "dis_abs"), cols=2),
    "ni28": Figure("28", "dis_abs of the relaxed normalization-layer program, k = 2, e_1, e_2", "distance",
                   sigma_panels("minnrm_norm.py", ("--neu", "2", "--optw", "1"), "dis_abs"), cols=2),
    "ni29": Figure("29", "dis_abs of the relaxed normalization-layer program, k = 3, e_1, e_2, e_3", "distance",
                   sigma_panels("minnrm_norm.py", ("--neu", "3", "--optw", "1"), "dis_abs"), cols=2),
    "ni30": Figure("30", "Test distance of the trained normalization-layer network, k = 2, the pair (u, -u)",
                   "distance", protocol_panels("ncvx_train_norm.py", ("--neu", "2", "--optw", "2"), "dis_test"),
                   cols=4),
    "ni31": Figure("31", "Test distance of the trained normalization-layer network, k = 2 Gaussian", "distance",
                   protocol_panels("ncvx_train_norm.py", ("--neu", "2"), "dis_test"), cols=4),
    "ni32": Figure("32", "Test distance of the trained normalization-layer network, k = 2 Gaussian, whitened data",
                   "distance", protocol_panels("ncvx_train_norm.py", ("--neu", "2", "--optx", "2"), "dis_test"),
                   cols=4, differs="the catalogue names two variants of k = 2 Gaussian (figures 31, 32) without "
                                   "saying how they differ; ours takes whitened data (optx 2) as the second"),
    "fss-skip": Figure("(beyond)", "Finite-size scaling of the skip programs: relaxed (with Wendel's prediction) "
                       "and exact, d = 25 to 400", "finite",
                       [Panel("relaxed program", "rec_rate_skip.py", (), "rec", "fss", "skip"),
                        Panel("relaxed program: all-ones pattern", "rec_rate_skip.py", (), "all_ones", "fss", "skip"),
                        Panel("exact program", "rec_rate_skip.py", ("--form", "exact"), "rec", "fss", "exact")]),
    "fss-norm": Figure("(beyond)", "Finite-size scaling of the relaxed normalization-layer program, k = 2, d = 20 "
                       "to 160", "finite", [Panel("k = 2", "rec_rate_norm.py", ("--neu", "2"), "rec", "norm", "norm")]),
    "universality": Figure("(beyond)", "Universality: the transition on every data kind, relaxed skip and "
                           "normalization-layer (k = 2) programs, d = 25 to 100", "finite", kinds_panels(), cols=3),
    "ni-clusters": Figure("(code only)", "Two Gaussian clusters: probability that D_u splits them, against sigma",
                          "clusters"),
    "llr3": Figure("[LLR] 3", "Test error of tanh CNN / CNN without sharing / fully connected, by width and n",
                   "llr"),
}


class StepFailed(Exception):
    """A step exited with an error: (command, exit code)."""


class Runner:
    """Runs the scripts (each command once per invocation) and records what it did."""

    def __init__(self, args, reuse=None):
        self.args = args
        self.scale_name = "quick" if args.quick else "paper"
        self.scale = SCALES[self.scale_name]
        self.results = Path(args.results).resolve()
        self.out = Path(args.out).resolve()
        self.inprocess = args.quick
        self.done = {}  # command -> its main result (a sweep shared by two figures runs once)
        self.reuse = reuse or {}  # command -> main result of an earlier run, for scripts without a cell store
        self.commands = []

    def jobs(self):
        jobs = self.args.jobs or (1 if self.inprocess else None)  # a process pool costs seconds to start
        return ["--jobs", str(jobs)] if jobs else []

    def call(self, script, flags):
        """Run `python script flags`; its stderr (progress bars) goes through; returns stdout lines."""
        shown = " ".join(["python", script, *flags])
        print(f"reproduce: $ {shown}", file=sys.stderr, flush=True)
        self.commands.append(shown)
        if not self.inprocess:
            proc = subprocess.run([sys.executable, str(ROOT / script), *flags], stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise StepFailed(shown, proc.returncode)
            return proc.stdout.strip().splitlines()
        argv, captured = sys.argv, io.StringIO()
        sys.argv = [str(ROOT / script), *flags]
        try:
            with contextlib.redirect_stdout(captured):
                runpy.run_path(str(ROOT / script), run_name="__main__")
        except SystemExit as e:
            if e.code not in (0, None):
                raise StepFailed(shown, e.code if isinstance(e.code, int) else 1) from None
        finally:
            sys.argv = argv
            import matplotlib.pyplot as plt
            plt.close("all")
        return captured.getvalue().strip().splitlines()

    def sweep_flags(self, panel):
        if panel.grid:
            grid, trials = STUDY[self.scale_name][panel.grid]
            return [*grid, "--ratios", RATIOS[self.scale_name][panel.ratios], "--sample", str(trials), *panel.flags]
        trials = self.scale["train"] if panel.script.startswith("ncvx_") else self.scale["program"]
        if panel.script == "rec_rate_skip.py" and not panel.flags:
            trials = HEADLINE[self.scale_name]
        train = self.scale["train_flags"] if panel.script.startswith("ncvx_") else []
        return [*self.scale["grid"], "--sample", str(trials), *panel.flags, *train]

    def sweep(self, panel):
        """The panel's sweep at this scale (once); returns {metric: result file}."""
        flags = [*self.sweep_flags(panel), "--save_folder", str(self.results), *self.jobs()]
        key = (panel.script, tuple(flags))
        if key not in self.done:
            lines = self.call(panel.script, flags)
            print(f"reproduce: {lines[-2] if len(lines) > 1 else lines[-1]}", flush=True)
            self.done[key] = Path(lines[-1])
        meta = json.loads(self.done[key].with_suffix(".json").read_text())
        return {m: self.results / name for m, name in meta["files"].items()}

    def once(self, script, flags):
        """A script without a cell store (two_clusters.py, llr_train.py): reused when an earlier
        run of the same command left its result; returns the main result."""
        shown = " ".join(["python", script, *flags])
        old = self.reuse.get(shown)
        if old and Path(old).exists() and Path(old).with_suffix(".json").exists():
            print(f"reproduce: {old} exists, not recomputed", file=sys.stderr)
            self.commands.append(shown)
            return Path(old)
        return Path(self.call(script, flags)[-1])

    def commands_of(self, fig_id):
        """The commands an ID runs at this scale (for --list), without running them."""
        fig = FIGURES[fig_id]
        if fig.kind == "clusters":
            return [" ".join(["python two_clusters.py", *self.scale["clusters_flags"], "--out", f"{fig_id}.png"])]
        if fig.kind == "llr":
            return [" ".join(["python llr_train.py", *self.scale["llr_flags"]]),
                    f"python plot_llr.py RESULT.npy --out {fig_id}.png"]
        sweeps = list(dict.fromkeys(" ".join(["python", p.script, *self.sweep_flags(p)]) for p in fig.panels))
        return sweeps + [" ".join(["python plot_phase.py RESULTS...", *plot_flags(fig), "--out", f"{fig_id}.png"])]


def plot_flags(fig):
    flags = ["--style", "paper"]
    flags += ["--theory"] if fig.theory else []
    flags += ["--fit", "--boundary"] if fig.kind == "rate" else ["--fit"] if fig.kind == "finite" else []
    flags += ["--fit_from", f"{fig.fit_from:g}"] if fig.fit_from else []
    return flags + ["--cols", str(fig.cols or len(fig.panels))]


def make(r, fig_id):
    """Make one ID; returns (png, panels as dicts)."""
    fig = FIGURES[fig_id]
    png = r.out / f"{fig_id}.png"
    if fig.kind == "clusters":
        main = r.once("two_clusters.py", [*r.scale["clusters_flags"], "--save_folder", str(r.results)])
        plot_clusters(main, png)
        return png, [dict(label="P(split)", file=str(main))]
    if fig.kind == "llr":
        main = r.once("llr_train.py", [*r.scale["llr_flags"], "--save_folder", str(r.results), *r.jobs()])
        r.call("plot_llr.py", [str(main), "--out", str(png)])
        return png, [dict(label="test MSE", file=str(main))]
    panels = []
    for p in fig.panels:
        files = r.sweep(p)
        entry = dict(label=p.label, file=str(files[p.metric]))
        if "unique" in files:
            entry["unique"] = str(files["unique"])
        if "all_ones" in files:
            entry["all_ones"] = str(files["all_ones"])
        panels.append(entry)
    r.call("plot_phase.py", [*(p["file"] for p in panels), *plot_flags(fig), "--out", str(png)])
    return png, panels


def plot_clusters(main, png):
    """two_clusters.py wrote its plot beside its result: copy it to ID.png."""
    results.atomic_save(png, lambda tmp: Path(tmp).write_bytes(main.with_suffix(".png").read_bytes()))


# ----- summary ---------------------------------------------------------------------------

def fmt(x, digits=3):
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}g}"


def rate_rows(fig_id, png, panels):
    """Per panel of a fitted figure: n50/d over the d where a transition was located."""
    from planted import transition  # scipy: only for the summary of the fitted figures
    fits = transition.read_csv(png.with_name(png.stem + "_fit.csv"))
    rows = []
    for p in panels:
        mine = [f for f in fits if f["result"] == Path(p["file"]).name]
        ratios = np.array([f["n50_over_d"] for f in mine if np.isfinite(f["n50"])])
        missing = [f"d={f['d']:g}: {f['reason']}" for f in mine if not np.isfinite(f["n50"])]
        value = (f"{np.median(ratios):.2f} [{ratios.min():.2f}, {ratios.max():.2f}]" if ratios.size else "")
        rows.append(dict(id=fig_id, panel=p["label"], statistic="n50/d: median [min, max] over d",
                         value=value, note="; ".join(missing), file=Path(p["file"]).name))
    return rows


def distance_rows(fig_id, panels):
    """Per panel of a distance figure: the mean over the trials of cells with n >= 3d, and
    where the sweep saved `unique`, the share of trials with a tied optimum."""
    rows = []
    for p in panels:
        values, meta = results.read(p["file"])
        nvec, dvec = np.array(meta["nvec"]), np.array(meta["dvec"])
        above = nvec[:, None] >= ABOVE * dvec[None, :]
        note = ""
        if "unique" in p:
            unique, _ = results.read(p["unique"])
            ties = np.asarray(unique, float)
            note = f"ties on {np.mean(ties[np.isfinite(ties)] == 0):.0%} of trials"
        value = fmt(float(np.nanmean(values[above]))) if above.any() and np.isfinite(values[above]).any() else ""
        rows.append(dict(id=fig_id, panel=p["label"], statistic=f"mean {meta['metric']} over cells n >= {ABOVE}d",
                         value=value, note=note, file=Path(p["file"]).name))
    return rows


def clusters_rows(fig_id, panels):
    """Per d: the sigma where the split probability first reaches 1/2 (linear interpolation)."""
    prob = np.load(panels[0]["file"])  # axes (d, sigma), not a sweep's: read beside results.read
    meta = json.loads(Path(panels[0]["file"]).with_suffix(".json").read_text())
    sigmas = np.array(meta["sigmas"])
    rows = []
    for d, row in zip(meta["dvec"], prob):
        above = np.flatnonzero(row >= 0.5)
        if not above.size or above[0] == 0:
            value = ""
        else:
            k = above[0]
            value = fmt(float(np.interp(0.5, row[k - 1:k + 1], sigmas[k - 1:k + 1])))
        rows.append(dict(id=fig_id, panel=f"d = {d}", statistic="sigma where P(split) = 1/2",
                         value=value, note=f"P at the largest sigma {fmt(float(row[-1]))}",
                         file=Path(panels[0]["file"]).name))
    return rows


def llr_rows(fig_id, panels):
    """Per family: the model rank and, per width, the smallest n from which every size recovers."""
    values, meta = results.read(panels[0]["file"])
    sizes = np.array(meta["sizes"])
    rows = []
    for i, family in enumerate(meta["families"]):
        firsts = []
        for j, N in enumerate(meta["widths"]):
            with np.errstate(divide="ignore"):
                ok = 10 ** np.nanmean(np.log10(values[i, j]), axis=-1) < LLR_TOL
            tail = np.flatnonzero(~ok)  # the first n after which every larger size recovers too
            first = sizes[0] if not tail.size else (sizes[tail[-1] + 1] if tail[-1] + 1 < len(sizes) else None)
            firsts.append(f"N={N}: {first if first is not None else '-'}")
        rows.append(dict(id=fig_id, panel=family, statistic=f"model rank; first n from which test MSE < {LLR_TOL:g}",
                         value=str(meta["model_rank"][family]), note=", ".join(firsts),
                         file=Path(panels[0]["file"]).name))
    return rows


def with_ci(row, key):
    """`key` of a finite-size CSV row with its interval (`key`_lo, `key`_hi): 'v [lo, hi]'."""
    return f"{fmt(row.get(key))} [{fmt(row.get(key + '_lo'))}, {fmt(row.get(key + '_hi'))}]"


def finite_rows(fig_id, png, panels):
    """Per panel of a ratio-grid figure: the centre n50/d per d, the exponent a of the width
    (n90 - n10)/d ~ d^-a, and the collapse's centre c and exponent a, each with its interval."""
    from planted import transition
    fits = transition.read_csv(png.with_name(png.stem + "_finite.csv"), transition.FINITE_COLUMNS)
    rows = []
    for p in panels:
        mine = [f for f in fits if f["result"] == Path(p["file"]).name]
        centres = ", ".join(f"d={f['d']:g}: {with_ci(f, 'centre')}" for f in mine)
        first = mine[0] if mine else {}  # the power law and the collapse repeat on every row
        law = f"width exponent a = {with_ci(first, 'width_exponent')}"
        fold = f"collapse c = {with_ci(first, 'collapse_c')}, a = {with_ci(first, 'collapse_a')}"
        rows.append(dict(id=fig_id, panel=p["label"], statistic="centre n50/d per d (95% bootstrap)",
                         value=centres, note=f"{law}; {fold}", file=Path(p["file"]).name))
    return rows


def summary_rows(fig_id, png, panels):
    kind = FIGURES[fig_id].kind
    if kind == "rate":
        return rate_rows(fig_id, png, panels)
    if kind == "finite":
        return finite_rows(fig_id, png, panels)
    if kind == "distance":
        return distance_rows(fig_id, panels)
    if kind == "clusters":
        return clusters_rows(fig_id, panels)
    return llr_rows(fig_id, panels)


def write_summary(r, figures, rows):
    fields = ["id", "panel", "statistic", "value", "note", "file"]
    with open(r.out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Reproduction summary ({r.scale_name} scale)", "",
             f"Grid: `{' '.join(r.scale['grid'])}`; results in `{r.results}`.", ""]
    for fig_id, info in figures.items():
        fig = FIGURES[fig_id]
        lines += [f"## {fig_id} (paper figure {fig.paper}): {fig.title}", "",
                  f"![{fig_id}]({Path(info['png']).name})", "",
                  f"{info['seconds']:.0f} s, {info.get('failed_cells', 0)} failed cells. Commands:", "", "```"]
        lines += info["commands"] + ["```", "", "| panel | statistic | value | note |", "|---|---|---|---|"]
        lines += [f"| {x['panel']} | {x['statistic']} | {x['value']} | {x['note']} |" for x in rows
                  if x["id"] == fig_id]
        lines.append("")
    (r.out / "summary.md").write_text("\n".join(lines))


def save(r, figures, manifest_path, start):
    """The manifest and the summary of the IDs made so far (in the catalogue's order); returns
    the seconds since `start`."""
    figures = {k: figures[k] for k in FIGURES if k in figures}
    manifest = dict(scale=r.scale_name, grid=r.scale["grid"], results=str(r.results), figures=figures,
                    wall_seconds=round(time.time() - start, 1))
    rows = [row for fig_id, info in figures.items() for row in summary_rows(fig_id, Path(info["png"]), info["panels"])]
    results.atomic_save(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))
    write_summary(r, figures, rows)
    return manifest["wall_seconds"]


def failed_cells(panels):
    total = 0
    for p in panels:
        meta = json.loads(Path(p["file"]).with_suffix(".json").read_text())
        total += int(meta.get("failed_cells", 0) or 0)
    return total


def id_list(text):
    ids = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [i for i in ids if i not in FIGURES]
    if not ids or unknown:
        raise argparse.ArgumentTypeError(f"unknown figure ID {', '.join(unknown) or repr(text)}; "
                                         "python reproduce.py --list shows them (e.g. ni4a,ni8)")
    return list(dict.fromkeys(ids))


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print one line per figure ID (what, commands) and stop")
    parser.add_argument("--quick", action="store_true",
                        help="tiny grid (n <= 40, d <= 10, step 5, 1 trial, 30 epochs), in this process: for CI")
    parser.add_argument("--only", type=id_list, default=list(FIGURES),
                        help="figure IDs to make, in this order, e.g. ni4a,ni8 (default: all)")
    parser.add_argument("--out", default=None, help="folder for the PNGs, fit CSVs and the summary "
                                                    "(default: figures, with --quick figures/quick)")
    parser.add_argument("--results", default="results",
                        help="--save_folder of the sweeps (their cell stores live there)")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="passed to every sweep (default: theirs; with --quick 1)")
    args = parser.parse_args(argv)
    args.out = args.out or ("figures/quick" if args.quick else "figures")
    if args.list:
        r = Runner(args)
        for fig_id in args.only:
            fig = FIGURES[fig_id]
            print(f"{fig_id:12s} figure {fig.paper}: {fig.title}  |  " + " ; ".join(r.commands_of(fig_id)))
        return 0
    for flag, folder in (("--out", args.out), ("--results", args.results)):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as e:
            parser.error(f"cannot write to {flag} {folder}: {e.strerror or e}")
    scale_name = "quick" if args.quick else "paper"
    manifest_path = Path(args.out) / "manifest.json"
    figures, reuse = {}, {}
    try:  # IDs made by an earlier run into the same folder, at the same scale, stay listed
        old = json.loads(manifest_path.read_text())
        if (old["scale"], old["results"]) == (scale_name, str(Path(args.results).resolve())):
            figures = {k: v for k, v in old["figures"].items() if k in FIGURES and k not in args.only}
            for info in old["figures"].values():
                for command, file in info.get("once", {}).items():
                    reuse[command] = file
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    r = Runner(args, reuse)
    start = time.time()
    try:
        for fig_id in args.only:
            print(f"reproduce: {fig_id}: {FIGURES[fig_id].title}", file=sys.stderr, flush=True)
            t0, before = time.time(), len(r.commands)
            png, panels = make(r, fig_id)
            commands = r.commands[before:]
            # the first command of these IDs is the one without a cell store, its result the panel's
            once = {commands[0]: panels[0]["file"]} if FIGURES[fig_id].kind in ("clusters", "llr") else {}
            figures[fig_id] = dict(paper=FIGURES[fig_id].paper, title=FIGURES[fig_id].title, png=str(png),
                                   panels=panels, commands=commands, seconds=round(time.time() - t0, 1),
                                   failed_cells=0 if FIGURES[fig_id].kind in ("clusters", "llr")
                                   else failed_cells(panels), once=once)
            save(r, figures, manifest_path, start)  # after every ID: a long run shows its progress
    except StepFailed as e:
        shown, code = e.args
        if code in (130, 143):
            print(f"reproduce: interrupted in `{shown}`; run the same command again to resume", file=sys.stderr)
            return code
        print(f"reproduce: `{shown}` failed (exit code {code}); finished cells are kept, re-run to resume",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reproduce: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    wall = save(r, figures, manifest_path, start)
    print(f"reproduce: {len(args.only)} figures in {wall:.0f} s, summary in {r.out / 'summary.md'}")
    print(r.out / "summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
