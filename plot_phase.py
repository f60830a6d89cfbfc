"""Phase-transition heatmaps from result files: mean over trials, n across, d up.

    python plot_phase.py RESULT.npy [RESULT2.npy ...] --out FIG.png [--boundary] [--theory] [--fit]
                         [--style default|paper] [--log] [--cols C]

Each RESULT.npy (shape len(nvec) x len(dvec) x sample) is read with its JSON sidecar, which
gives the grids and the flags named in the title. Several files become panels of one figure.
For 0/1 metrics (recovery, a condition holding) the colour is the rate with its 0.5 contour.
--fit locates the transition of each 0/1 panel (planted.transition, docs/reference.md §7: per
d, a logistic fit in n gives n50(d) with a bootstrap interval), draws n50(d) on the heatmap and
writes FIG_fit.csv (the CSV and the PNG are written together, or neither); --fit_from 1 fits the
cells with n >= d only.
--style paper draws rates and distances as the published figures do: filled contours on a
linear 0-1 scale, levels 0, 0.1, ..., 1, values above 1 in the top colour; the default style
(cells as they are, --log for distances) is the one for looking at a sweep.
A distance panel whose sidecar lists a `unique` metric (the minimal-norm scripts) is hatched
where the optimum was not unique on some trial: any point of the optimal face solves the
program there, so the distance depends on the solver.
"""
import sys
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Patch, Rectangle

from planted import data, plotting, results  # plotting selects the headless Agg backend
from planted.cli import Parser, nonnegative_float, positive_int

METRICS = {"rec": "recovery of the planted model", "all_ones": "all-ones pattern present",
           "dis_abs": "distance to the planted weights", "dis_test": "test error ||f(X_test) - y_test||",
           "loss": "final training loss", "holds": "neural isometry condition holds",
           "value": "condition value (holds below 1)", "gap": "recovered minus condition holds"}
TITLE_FLAGS = ("form", "neu", "sigma", "beta", "epochs", "lr", "m", "condition", "solver", "protocol")
DISTANCES = ("dis_abs", "dis_test")
PAPER_LEVELS = np.linspace(0, 1, 11)
TIE_HATCH = "////"


def is_rate(values):
    finite = values[np.isfinite(values)]
    return finite.size > 0 and np.isin(finite, (0.0, 1.0)).all()


def title(meta):
    flags = meta["flags"]
    words = [f"{meta['experiment']}: {METRICS.get(meta['metric'], meta['metric'])}",
             f"{data.OPTX.get(flags.get('optx'), flags.get('optx'))} X, optw {flags.get('optw')}"]
    words += [f"{k} {flags[k]}" for k in TITLE_FLAGS if flags.get(k) is not None]
    rest = words[1:]  # four flags a line, so that the titles of side-by-side panels do not overlap
    return "\n".join([words[0]] + [", ".join(rest[i:i + 4]) for i in range(0, len(rest), 4)])


def draw_fit(ax, values, meta, fit_from=0.0):
    """The logistic n50(d) of a 0/1 panel with its bootstrap interval (fitted on n >= fit_from d);
    returns the table rows."""
    from planted import transition  # scipy: only with --fit
    rows = transition.table(values, meta["nvec"], meta["dvec"], fit_from=fit_from)
    fitted = [r for r in rows if np.isfinite(r["n50"])]
    if fitted:
        n50 = np.array([r["n50"] for r in fitted])
        err = np.array([[r["n50"] - r["lo"], r["hi"] - r["n50"]] for r in fitted]).T
        ax.errorbar(n50, [r["d"] for r in fitted], xerr=np.nan_to_num(err), fmt="o-", color="orange",
                    ms=3, lw=1.2, capsize=2, label="logistic n50 (95% bootstrap)")
    return rows


def ties(path, meta):
    """(len(nvec), len(dvec)) booleans: cells where some trial's optimum was not unique, from the
    `unique` result beside a minimal-norm distance; None when the sweep saved no such metric."""
    name = meta.get("files", {}).get("unique")
    if meta["metric"] not in DISTANCES or name is None or not (Path(path).parent / name).exists():
        return None
    unique = np.load(Path(path).parent / name)
    return (unique == 0).any(axis=2)


def hatch(ax, nvec, dvec, tied):
    """Hatch the tied cells (over the colours, so the value stays visible); returns the legend entry."""
    dn, dd = np.diff(plotting.edges(nvec))[0], np.diff(plotting.edges(dvec))[0]
    for i, j in zip(*np.nonzero(tied)):
        ax.add_patch(Rectangle((nvec[i] - dn / 2, dvec[j] - dd / 2), dn, dd, fill=False, hatch=TIE_HATCH,
                               edgecolor="0.85", linewidth=0))
    return Patch(fill=False, hatch=TIE_HATCH, edgecolor="0.3",
                 label=f"hatched: optimum not unique on some trial ({tied.sum()} cells)")


def paper_image(ax, nvec, dvec, mean):
    """The published rendering: filled contours, linear 0-1, values above 1 in the top colour."""
    if len(nvec) < 2 or len(dvec) < 2:  # contours need a 2-D grid; a single row or column as cells
        return ax.pcolormesh(plotting.edges(nvec), plotting.edges(dvec), np.ma.masked_invalid(np.minimum(mean, 1)),
                             cmap="viridis", vmin=0, vmax=1, shading="flat")
    return ax.contourf(nvec, dvec, np.ma.masked_invalid(np.minimum(mean, 1)), levels=PAPER_LEVELS, cmap="viridis")


def panel(ax, values, meta, args, path=None):
    """Draw one heatmap; with --fit on a 0/1 metric, returns the transition table rows."""
    nvec, dvec = np.array(meta["nvec"]), np.array(meta["dvec"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells are meant to stay blank
        mean = np.nanmean(values, axis=2).T
    rate = is_rate(values)
    finite = mean[np.isfinite(mean)]
    paper = args.style == "paper" and (rate or meta["metric"] in DISTANCES)
    log = not rate and not paper and args.log and finite.size and finite.min() > 0
    norm = LogNorm(vmin=finite.min(), vmax=finite.max()) if log else None
    if paper:
        image = paper_image(ax, nvec, dvec, mean)
    else:
        image = ax.pcolormesh(plotting.edges(nvec), plotting.edges(dvec), np.ma.masked_invalid(mean),
                              cmap="viridis", norm=norm, vmin=None if log else (0 if rate else None),
                              vmax=None if log else (1 if rate else None), shading="flat")
    tied = ties(path, meta) if path is not None else None
    extra = [hatch(ax, nvec, dvec, tied)] if tied is not None and tied.any() else []
    label = f"{meta['metric']}, mean over {values.shape[2]} trials"
    if paper and not rate:
        label += " (> 1: top colour)"
    if rate:
        label = f"{meta['metric']} rate over {values.shape[2]} trials"
        levels = [(0.5, "-", "rate 0.5")] + ([(0.9, "--", "rate 0.9")] if args.boundary else [])
        for level, style, name in levels:
            if len(nvec) > 1 and len(dvec) > 1 and finite.min() < level < finite.max():
                ax.contour(nvec, dvec, mean, levels=[level], colors="white", linewidths=1.3,
                           linestyles=style)
                ax.plot([], [], color="white", ls=style, label=name)  # contours have no legend entry
    rows = (draw_fit(ax, values, meta, getattr(args, "fit_from", 0.0))
            if getattr(args, "fit", False) and rate else None)
    if args.theory:
        d = np.linspace(dvec[0], dvec[-1], 50)
        ax.plot(2 * d, d, color="red", lw=1.2, label="n = 2d (Wendel)")
        ax.set_xlim(plotting.edges(nvec)[[0, -1]])
    if paper and len(nvec) > 1 and len(dvec) > 1:  # contours span the grid points, not the cells
        ax.set_xlim(nvec[0], nvec[-1])
        ax.set_ylim(dvec[0], dvec[-1])
    handles = ax.get_legend_handles_labels()[0] + extra
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=8, facecolor="0.6", framealpha=0.8)
    bar = plt.colorbar(image, ax=ax, label=label + (" (log scale)" if log else ""))
    if paper:
        bar.set_ticks(PAPER_LEVELS[::2])
    ax.set_xlabel("n (number of samples)")
    ax.set_ylabel("d (dimension)")
    ax.set_title(title(meta), fontsize=9)
    return rows


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help=".npy result files (each with its .json sidecar)")
    parser.add_argument("--out", default=None, help="PNG to write (default: the first result's name, .png)")
    parser.add_argument("--boundary", action="store_true", help="also draw the 0.9 contour of a rate")
    parser.add_argument("--theory", action="store_true", help="overlay the line n = 2d (docs/reference.md §2)")
    parser.add_argument("--log", action="store_true", help="log colour scale for distances")
    parser.add_argument("--cols", type=positive_int, default=None,
                        help="panels per row (default: all in one row)")
    parser.add_argument("--fit", action="store_true",
                        help="0/1 panels: logistic fit of the rate in n per d, n50(d) drawn, FIG_fit.csv written")
    parser.add_argument("--fit_from", type=nonnegative_float, default=0.0, metavar="RATIO",
                        help="--fit on the cells with n >= RATIO * d only (1: leave out n < d, where the "
                             "skip programs with optw 1 recover for another reason)")
    parser.add_argument("--style", default="default", choices=("default", "paper"),
                        help="paper: the published figures' filled contours, linear 0-1, levels 0, 0.1, ..., 1 "
                             "(rates and distances); default: one cell per grid point")
    args = parser.parse_args(argv)
    out = plotting.out_path(parser, args.out, args.results[0])
    # a loss curve (n, d, trial, epoch) or an llr_train.py result is not a heatmap
    loaded = [plotting.load(parser, path, results.SWEEP_AXES) for path in args.results]
    cols = min(args.cols or len(loaded), len(loaded))
    nrows = -(-len(loaded) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(loaded):]:
        ax.set_visible(False)
    tables = []
    for ax, path, (values, meta) in zip(axes.flat, args.results, loaded):
        rows = panel(ax, values, meta, args, path)
        if rows is not None:
            tables += [dict(result=Path(path).name, **row) for row in rows]
        elif args.fit:
            print(f"plot_phase: --fit: {path} is not a 0/1 rate; not fitted", file=sys.stderr)
    also = []
    if args.fit:
        from planted import transition  # scipy: only with --fit
        also = [(out.with_name(out.stem + "_fit.csv"),
                 lambda tmp: transition.write_csv(tmp, tables, extra=["result"]))]
    fig.tight_layout()
    return plotting.save_figure(parser, fig, out, also)


if __name__ == "__main__":
    sys.exit(main() and 0)
