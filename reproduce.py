"""Regenerate the figures of [NI] and [LLR] in one command, with a summary of the transitions.

    python reproduce.py [--quick] [--only 1,2,...] [--out FOLDER] [--results results] [--jobs J]

Each figure is made by running the documented scripts as subprocesses (the sweeps, then
plot_phase.py or plot_llr.py), so every sweep is resumable through its SQLite cell store:
after an interruption, the same command skips the finished cells (and a finished llr_train.py
result is reused). Written into --out (default figures/, with --quick figures/quick/):
figN_*.png, a figN_*_fit.csv of the logistic transition fit beside every recovery figure
(plot_phase.py --fit), summary.md and summary.csv (one row per panel), and manifest.json (the
commands, result files and seconds of every figure).

Figures (docs/reference.md §1-§8; paper scale n <= 400, d <= 100, step 10, 5 trials for convex
programs, 10 for training; --quick: n <= 100, d <= 30, fewer trials and epochs):
  1 recovery rate, relaxed and exact skip programs, Gaussian data, optw 0 and 1
  2 recovery rate of the relaxed skip program for the four data kinds (optx 0-3)
  3 dis_abs of the minimal-norm skip program, sigma in {0, 0.05, 0.1, 0.2}
  4 dis_test of the trained ReLU + skip network, same sigma
  5 recovery rate of the normalization-layer program, k = 2, 3 and the pair (u, -u)
  6 neural isometry conditions against recovery, skip (linear) and normalization (normk, k = 2)
  7 local linear recovery heatmaps with the model-rank lines ([LLR] Figure 3)
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from planted import data, results
from planted.cli import Parser, positive_int

ROOT = Path(__file__).resolve().parent
SIGMAS = ("0", "0.05", "0.1", "0.2")
ABOVE = 3  # "above the transition": n >= 3d, where the relaxed skip program recovers w.h.p. (§7)
LLR_TOL = 1e-6  # a run "recovers" the [LLR] target when its test MSE is below this

# The scales: trials of the relaxed skip program on Gaussian data, optw 0, whose transition
# the summary measures per d ("headline"); of the other relaxed skip sweeps ("skip"); of the
# other convex sweeps ("convex"); of the conditions ("nic"); of the noisy minimal-norm sweeps
# ("noise"); of network training ("train").
SCALES = {
    "paper": dict(grid=["--n", "400", "--d", "100", "--step", "10"], headline=5, skip=5, convex=5, nic=5,
                  noise=5, train=10, train_flags=[], llr_flags=[]),
    # A few minutes on 2 cores. 20 trials for the headline: at the smallest d the grid has
    # n = d, 2d, 3d only, and n50/d rests on the single column n = 2d. 5 for the conditions,
    # so that the normalization-layer condition holds on a few trials at all.
    "quick": dict(grid=["--n", "100", "--d", "30", "--step", "10"], headline=20, skip=5, convex=3, nic=5,
                  noise=3, train=2, train_flags=["--epochs", "50"],
                  llr_flags=["--widths", "1,3", "--sizes", "2:40:2", "--steps", "2000", "--sample", "1"]),
}
TITLES = {
    1: "Recovery rate of the relaxed and exact ReLU + skip programs (Gaussian X, optw 0 and 1)",
    2: "Recovery rate of the relaxed ReLU + skip program for the four data kinds",
    3: "dis_abs = ||w0 - w|| of the minimal-norm ReLU + skip program under label noise",
    4: "dis_test of the trained (AdamW) ReLU + skip network under label noise",
    5: "Recovery rate of the normalization-layer program: k = 2, k = 3, the pair (u, -u)",
    6: "Neural isometry conditions against actual recovery (skip and normalization families)",
    7: "[LLR] Figure 3: test error of tanh CNN / CNN without sharing / fully connected, by width and n",
}


class StepFailed(Exception):
    """A subprocess exited with an error: (command, exit code)."""


class Runner:
    """Runs the scripts (each command once per invocation) and records what it did."""

    def __init__(self, args):
        self.args = args
        self.scale = SCALES["quick" if args.quick else "paper"]
        self.results = Path(args.results).resolve()
        self.out = Path(args.out).resolve()
        self.done = {}  # command -> its main result (a sweep shared by two figures runs once)
        self.commands = []

    def call(self, script, flags):
        """Run `python script flags`; its stderr (progress bars) goes through; returns stdout lines."""
        cmd = [sys.executable, str(ROOT / script), *flags]
        shown = " ".join(["python", script, *flags])
        print(f"reproduce: $ {shown}", file=sys.stderr, flush=True)
        self.commands.append(shown)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise StepFailed(shown, proc.returncode)
        return proc.stdout.strip().splitlines()

    def jobs(self):
        return ["--jobs", str(self.args.jobs)] if self.args.jobs else []

    def sweep(self, script, *flags):
        """One (n, d) sweep of a [NI] script at this scale; returns {metric: result file}."""
        flags = [*self.scale["grid"], *flags, "--save_folder", str(self.results), *self.jobs()]
        key = (script, tuple(flags))
        if key not in self.done:
            lines = self.call(script, flags)
            print(f"reproduce: {lines[-2] if len(lines) > 1 else lines[-1]}", flush=True)
            self.done[key] = Path(lines[-1])
        meta = json.loads(self.done[key].with_suffix(".json").read_text())
        return {m: self.results / name for m, name in meta["files"].items()}

    def plot(self, name, files, *flags):
        """plot_phase.py on the files; returns the PNG (and FIG_fit.csv with --fit)."""
        png = self.out / name
        self.call("plot_phase.py", [*map(str, files), *flags, "--out", str(png)])
        return png


def panel(label, file):
    return dict(label=label, file=str(file))


def skip_flags(r, optw=0, form="relaxed", optx=0):
    """rec_rate_skip.py flags, defaults left out: figures 1 and 2 share the Gaussian run."""
    if form != "relaxed":
        trials = r.scale["convex"]
    else:
        trials = r.scale["headline"] if (optw, optx) == (0, 0) else r.scale["skip"]
    flags = ["--sample", str(trials)]
    flags += ["--optw", str(optw)] if optw else []
    flags += ["--form", form] if form != "relaxed" else []
    return flags + (["--optx", str(optx)] if optx else [])


def figure1(r):
    panels = []
    for optw in (0, 1):
        for form in ("relaxed", "exact"):
            files = r.sweep("rec_rate_skip.py", *skip_flags(r, optw=optw, form=form))
            panels.append(dict(panel(f"{form}, optw {optw}", files["rec"]), all_ones=str(files["all_ones"])))
    # fitted on n >= d: with optw 1 the planted w of an n < d cell lies in the row space of X
    # (thin SVD) and is recovered, a second region the logistic model in n cannot describe
    png = r.plot("fig1_rec_rate_skip.png", [p["file"] for p in panels], "--theory", "--boundary", "--fit",
                 "--fit_from", "1", "--cols", "2")
    return png, panels


def figure2(r):
    panels = []
    for optx, kind in data.OPTX.items():
        files = r.sweep("rec_rate_skip.py", *skip_flags(r, optx=optx))
        panels.append(dict(panel(f"optx {optx} ({kind})", files["rec"]), all_ones=str(files["all_ones"])))
    png = r.plot("fig2_rec_rate_skip_optx.png", [p["file"] for p in panels], "--theory", "--boundary", "--fit",
                 "--cols", "2")
    return png, panels


def figure3(r):
    panels = [panel(f"sigma {s}", r.sweep("minnrm_skip.py", "--sample", str(r.scale["noise"]), "--sigma", s)
                    ["dis_abs"]) for s in SIGMAS]
    return r.plot("fig3_minnrm_dis_abs.png", [p["file"] for p in panels], "--theory", "--log", "--cols", "2"), panels


def figure4(r):
    panels = [panel(f"sigma {s}", r.sweep("ncvx_train_skip.py", "--sample", str(r.scale["train"]), "--sigma", s,
                                          *r.scale["train_flags"])["dis_test"]) for s in SIGMAS]
    return r.plot("fig4_ncvx_dis_test.png", [p["file"] for p in panels], "--theory", "--log", "--cols", "2"), panels


def figure5(r):
    trials = ["--sample", str(r.scale["convex"])]
    panels = [panel("k = 2", r.sweep("rec_rate_norm.py", *trials, "--neu", "2")["rec"]),
              panel("k = 3", r.sweep("rec_rate_norm.py", *trials, "--neu", "3")["rec"]),
              panel("(u, -u)", r.sweep("rec_rate_norm.py", *trials, "--neu", "2", "--optw", "2")["rec"])]
    return r.plot("fig5_rec_rate_norm.png", [p["file"] for p in panels], "--boundary", "--fit"), panels


def figure6(r):
    panels = []
    for condition, neu in (("linear", "1"), ("normk", "2")):
        files = r.sweep("nic.py", "--sample", str(r.scale["nic"]), "--condition", condition, "--neu", neu,
                        "--compare")
        panels.append(dict(panel(f"{condition}: condition holds", files["holds"]), gap=str(files["gap"])))
        panels.append(panel(f"{condition}: relaxed program recovers", files["rec"]))
    return r.plot("fig6_nic.png", [p["file"] for p in panels], "--boundary", "--fit", "--cols", "2"), panels


def figure7(r):
    import llr_train  # torch: only for this figure
    flags = [*r.scale["llr_flags"], "--save_folder", str(r.results), *r.jobs()]
    parser = llr_train.make_parser()
    main = r.results / f"llr_train_{llr_train.result_tail(parser, parser.parse_args(flags))}.npy"
    if main.exists() and main.with_suffix(".json").exists():  # llr_train has no cell store: reuse a finished run
        print(f"reproduce: {main} exists, not retrained", file=sys.stderr)
    else:
        main = Path(r.call("llr_train.py", flags)[-1])
    png = r.out / "fig7_llr.png"
    r.call("plot_llr.py", [str(main), "--out", str(png)])
    return png, [panel("test MSE", main)]


FIGURES = {1: figure1, 2: figure2, 3: figure3, 4: figure4, 5: figure5, 6: figure6, 7: figure7}


# ----- summary ---------------------------------------------------------------------------

def fmt(x, digits=3):
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}g}"


def rate_rows(fig, png, panels):
    """Per panel of a fitted figure: n50/d over the d where a transition was located."""
    from planted import transition  # scipy: only for the summary of the fitted figures
    fits = transition.read_csv(png.with_name(png.stem + "_fit.csv"))
    rows = []
    for p in panels:
        mine = [f for f in fits if f["result"] == Path(p["file"]).name]
        ratios = np.array([f["n50_over_d"] for f in mine if np.isfinite(f["n50"])])
        missing = [f"d={f['d']:g}: {f['reason']}" for f in mine if not np.isfinite(f["n50"])]
        value = (f"{np.median(ratios):.2f} [{ratios.min():.2f}, {ratios.max():.2f}]" if ratios.size else "")
        rows.append(dict(figure=fig, panel=p["label"], statistic="n50/d: median [min, max] over d",
                         value=value, note="; ".join(missing), file=Path(p["file"]).name))
    return rows


def distance_rows(fig, panels):
    """Per panel of a distance figure: the mean over the trials of cells with n >= 3d."""
    rows = []
    for p in panels:
        values, meta = results.read(p["file"])
        nvec, dvec = np.array(meta["nvec"]), np.array(meta["dvec"])
        above = nvec[:, None] >= ABOVE * dvec[None, :]
        rows.append(dict(figure=fig, panel=p["label"], statistic=f"mean {meta['metric']} over cells n >= {ABOVE}d",
                         value=fmt(float(np.nanmean(values[above]))), note="", file=Path(p["file"]).name))
    return rows


def llr_rows(fig, panels):
    """Per family: the model rank and, per width, the smallest n from which every size recovers."""
    values, meta = results.read(panels[0]["file"])
    sizes = np.array(meta["sizes"])
    rows = []
    for i, family in enumerate(meta["families"]):
        firsts = []
        for j, N in enumerate(meta["widths"]):
            with np.errstate(divide="ignore"):
                ok = 10 ** np.nanmean(np.log10(values[i, j]), axis=-1) < LLR_TOL
            # the first n after which every larger size recovers too
            tail = np.flatnonzero(~ok)
            first = sizes[0] if not tail.size else (sizes[tail[-1] + 1] if tail[-1] + 1 < len(sizes) else None)
            firsts.append(f"N={N}: {first if first is not None else '-'}")
        rows.append(dict(figure=fig, panel=family, statistic=f"model rank; first n from which test MSE < {LLR_TOL:g}",
                         value=str(meta["model_rank"][family]), note=", ".join(firsts),
                         file=Path(panels[0]["file"]).name))
    return rows


def summary_rows(fig, png, panels):
    if fig in (1, 2, 5, 6):
        return rate_rows(fig, png, panels)
    if fig in (3, 4):
        return distance_rows(fig, panels)
    return llr_rows(fig, panels)


def write_summary(r, figures, rows, scale_name):
    fields = ["figure", "panel", "statistic", "value", "note", "file"]
    with open(r.out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Reproduction summary ({scale_name} scale)", "",
             f"Grid: `{' '.join(r.scale['grid'])}`; results in `{r.results}`.", ""]
    headline = r.out / "fig1_rec_rate_skip_fit.csv"
    if headline.exists():
        from planted import transition  # scipy: only for the summary of the fitted figures
        first = [f for f in transition.read_csv(headline) if "_w0_" in f["result"] and "formexact" not in f["result"]]
        lines += ["## Transition of the relaxed skip program (Gaussian X, optw 0)", "",
                  "Logistic fit of the recovery rate in log n per d, 95% bootstrap interval "
                  "(resampled trials, seed 0); Wendel's n = 2d is where the all-ones pattern is a ReLU "
                  "pattern with probability 1/2.", "",
                  "| d | n50 | 95% interval | n50/d | Wendel 2d | note |", "|---:|---:|---|---:|---:|---|"]
        for f in first:
            lines.append(f"| {f['d']:g} | {fmt(f['n50'])} | [{fmt(f['lo'])}, {fmt(f['hi'])}] | "
                         f"{fmt(f['n50_over_d'])} | {f['wendel_n']:g} | {f['reason']} |")
        lines.append("")
    for fig, info in figures.items():
        lines += [f"## Figure {fig}: {TITLES[fig]}", "", f"![figure {fig}]({Path(info['png']).name})", "",
                  f"{info['seconds']:.0f} s. Commands:", "", "```"] + info["commands"] + ["```", "",
                  "| panel | statistic | value | note |", "|---|---|---|---|"]
        lines += [f"| {x['panel']} | {x['statistic']} | {x['value']} | {x['note']} |" for x in rows
                  if x["figure"] == fig]
        lines.append("")
    (r.out / "summary.md").write_text("\n".join(lines))


def figure_list(text):
    try:
        figs = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        figs = []
    if not figs or not set(figs) <= set(FIGURES):
        raise argparse.ArgumentTypeError(f"expected figure numbers among 1-{len(FIGURES)} like 1,3; got {text!r}")
    return figs


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="reduced grid (n <= 100, d <= 30, fewer trials, epochs, LLR sizes): minutes, for CI")
    parser.add_argument("--only", type=figure_list, default=list(FIGURES),
                        help="figures to make, e.g. 1,3 (default: all)")
    parser.add_argument("--out", default=None, help="folder for the PNGs, fit CSVs and the summary "
                                                    "(default: figures, with --quick figures/quick)")
    parser.add_argument("--results", default="results",
                        help="--save_folder of the sweeps (their cell stores live there)")
    parser.add_argument("--jobs", type=positive_int, default=None, help="passed to every script (default: theirs)")
    args = parser.parse_args(argv)
    args.out = args.out or ("figures/quick" if args.quick else "figures")
    for flag, folder in (("--out", args.out), ("--results", args.results)):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as e:
            parser.error(f"cannot write to {flag} {folder}: {e.strerror or e}")
    scale_name = "quick" if args.quick else "paper"
    r = Runner(args)
    manifest_path = r.out / "manifest.json"
    manifest = dict(scale=scale_name, grid=r.scale["grid"], results=str(r.results), figures={})
    figures, start = {}, time.time()
    try:  # figures made by an earlier run into the same folder, at the same scale, stay listed
        old = json.loads(manifest_path.read_text())
        if (old["scale"], old["results"]) == (scale_name, str(r.results)):
            figures = {int(k): v for k, v in old["figures"].items() if int(k) not in args.only}
    except (OSError, ValueError, KeyError):
        pass
    try:
        for fig in args.only:
            print(f"reproduce: figure {fig}: {TITLES[fig]}", file=sys.stderr, flush=True)
            t0, before = time.time(), len(r.commands)
            png, panels = FIGURES[fig](r)
            figures[fig] = dict(title=TITLES[fig], png=str(png), panels=panels, commands=r.commands[before:],
                                seconds=round(time.time() - t0, 1))
    except StepFailed as e:
        shown, code = e.args
        if code == 130:
            print(f"reproduce: interrupted in `{shown}`; run the same command again to resume", file=sys.stderr)
            return 130
        print(f"reproduce: `{shown}` failed (exit code {code}); finished cells are kept, re-run to resume",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reproduce: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    figures = dict(sorted(figures.items()))
    manifest["figures"] = figures
    manifest["wall_seconds"] = round(time.time() - start, 1)
    rows = [row for fig, info in figures.items() for row in summary_rows(fig, Path(info["png"]), info["panels"])]
    manifest_path.write_text(json.dumps(manifest, indent=1))
    write_summary(r, figures, rows, scale_name)
    print(f"reproduce: {len(args.only)} figures in {manifest['wall_seconds']:.0f} s, summary in {r.out / 'summary.md'}")
    print(r.out / "summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
