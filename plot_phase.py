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
A ratio grid (--dims/--ratios) is drawn with n/d across and a row per d; with --fit as the rate
against n/d, a curve per d, with Wendel's prediction beside the relaxed skip program's, and its
finite-size analysis (docs/reference.md §7: per d the centre n50/d and the width (n90 - n10)/d,
the power law of the widths, the collapse) in FIG_finite.csv and FIG_finite.png.
"""
import sys
import warnings
from dataclasses import dataclass
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
# Gaussian and cubic Gaussian, whitened or not, Student-t and correlated (a Gaussian times an
# invertible factor): sign-symmetric rows in general position, see wendel_kind
WENDEL_OPTX = (0, 1, 2, 3, 6, 7)


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
    """Draw one heatmap (a ratio grid: n/d across, one row per d); with --fit on a 0/1 metric
    of a regular grid, returns the transition table rows."""
    ratio = "ratios" in meta
    dvec = np.array(meta["dvec"])
    xs = np.array(meta["ratios"] if ratio else meta["nvec"])
    ys = np.arange(len(dvec)) if ratio else dvec  # a ratio grid's d (25, 50, 100, ...) as rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells are meant to stay blank
        mean = np.nanmean(values, axis=2).T
    rate = is_rate(values)
    finite = mean[np.isfinite(mean)]
    paper = args.style == "paper" and (rate or meta["metric"] in DISTANCES)
    log = not rate and not paper and args.log and finite.size and finite.min() > 0
    norm = LogNorm(vmin=finite.min(), vmax=finite.max()) if log else None
    if paper:
        image = paper_image(ax, xs, ys, mean)
    else:
        image = ax.pcolormesh(plotting.edges(xs), plotting.edges(ys), np.ma.masked_invalid(mean),
                              cmap="viridis", norm=norm, vmin=None if log else (0 if rate else None),
                              vmax=None if log else (1 if rate else None), shading="flat")
    tied = ties(path, meta) if path is not None else None
    extra = [hatch(ax, xs, ys, tied)] if tied is not None and tied.any() else []
    label = f"{meta['metric']}, mean over {values.shape[2]} trials"
    if paper and not rate:
        label += " (> 1: top colour)"
    if rate:
        label = f"{meta['metric']} rate over {values.shape[2]} trials"
        levels = [(0.5, "-", "rate 0.5")] + ([(0.9, "--", "rate 0.9")] if args.boundary else [])
        for level, style, name in levels:
            if len(xs) > 1 and len(ys) > 1 and finite.min() < level < finite.max():
                ax.contour(xs, ys, mean, levels=[level], colors="white", linewidths=1.3,
                           linestyles=style)
                ax.plot([], [], color="white", ls=style, label=name)  # contours have no legend entry
    rows = (draw_fit(ax, values, meta, getattr(args, "fit_from", 0.0))
            if getattr(args, "fit", False) and rate and not ratio else None)
    if args.theory and ratio:
        ax.axvline(2, color="red", lw=1.2, label="n = 2d (Wendel)")
    elif args.theory:
        d = np.linspace(dvec[0], dvec[-1], 50)
        ax.plot(2 * d, d, color="red", lw=1.2, label="n = 2d (Wendel)")
        ax.set_xlim(plotting.edges(xs)[[0, -1]])
    if paper and len(xs) > 1 and len(ys) > 1:  # contours span the grid points, not the cells
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
    handles = ax.get_legend_handles_labels()[0] + extra
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=8, facecolor="0.6", framealpha=0.8)
    bar = plt.colorbar(image, ax=ax, label=label + (" (log scale)" if log else ""))
    if paper:
        bar.set_ticks(PAPER_LEVELS[::2])
    if ratio:
        ax.set_yticks(ys, [str(d) for d in dvec])
        ax.set_xlabel("n/d (n = round(ratio d))")
        ax.set_ylabel("d (dimension, one row each)")
    else:
        ax.set_xlabel("n (number of samples)")
        ax.set_ylabel("d (dimension)")
    ax.set_title(title(meta), fontsize=9)
    return rows


def wendel_kind(meta):
    """What Wendel's formula predicts for this result's metric, or None: for `all_ones` of the
    skip scripts P(the all-ones pattern is present); for `rec` of the relaxed skip program
    with a Gaussian planted neuron and no noise P(absent), which recovery needs (§2): an upper
    bound, met where the all-ones tie is what stops recovery. The formula holds for rows whose
    law is symmetric under sign flips, in general position, up to an invertible right factor:
    the data kinds WENDEL_OPTX."""
    flags = meta["flags"]
    if meta["experiment"] != "rec_rate_skip" or flags.get("optx") not in WENDEL_OPTX:
        return None
    if meta["metric"] == "all_ones":
        return "present"
    if meta["metric"] == "rec" and flags.get("form") == "relaxed" and flags.get("optw") == 0 \
            and not flags.get("sigma"):
        return "absent"
    return None


def wendel_curve(d, lo, hi, kind):
    """Wendel's prediction at every integer n in [lo, hi] for one d: (n/d, probability)."""
    from planted import patterns  # scipy.optimize: only here
    n = np.arange(lo, hi + 1)
    present = np.array([patterns.wendel_probability(int(k), int(d)) for k in n])
    return n / d, present if kind == "present" else 1 - present


@dataclass
class Finite:
    """The finite-size analysis of one ratio-grid rate (planted.transition): per d, the power
    law of the widths and the collapse, of `outcomes` (the result's 0/1 values, or 1 minus
    them for a metric that falls with n: `rate` names which); `wendel` as wendel_kind."""
    sizes: list
    law: object
    fold: object
    outcomes: np.ndarray
    rate: str
    wendel: str


FALLING = ("all_ones",)  # 0/1 metrics that fall with n: analysed as 1 - metric


def finite_analysis(values, meta, fit_from=0.0):
    """Finite of a ratio-grid 0/1 result, fitted on the cells with n >= fit_from d."""
    from planted import transition  # scipy: only with --fit
    n, dvec = np.array(meta["n"]), meta["dvec"]
    falling = meta["metric"] in FALLING
    outcomes = np.where((n < fit_from * np.array(dvec))[:, :, None], np.nan, 1 - values if falling else values)
    sizes = transition.finite_size_table(outcomes, n, dvec)
    law = transition.width_exponent(dvec, [f.width for f in sizes], [f.width_ci for f in sizes])
    fold = transition.collapse(n / np.array(dvec), dvec, outcomes)
    return Finite(sizes, law, fold, outcomes, f"1 - {meta['metric']}" if falling else meta["metric"],
                  wendel_kind(meta))


def colours(count):
    return plt.cm.viridis(np.linspace(0, 0.85, count))


def column_rate(values, n, j):
    """The distinct n of column j of a ratio grid and the rate at each (mean over trials)."""
    from planted import transition  # scipy: only with --fit
    nvec_d, outcomes = transition.column(values, n, j)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay out
        return nvec_d, np.nanmean(outcomes, axis=1)


def curves(ax, values, meta, args, finite):
    """A ratio grid's --fit panel: the rate against n/d (n rounded), one curve per d, with
    the logistic centre c_d and its interval at rate 1/2, and Wendel's prediction dashed
    where it applies; returns the transition table rows (FIG_fit.csv)."""
    from planted import transition  # scipy: only with --fit
    n, dvec = np.array(meta["n"]), meta["dvec"]
    for j, (d, colour, size) in enumerate(zip(dvec, colours(len(dvec)), finite.sizes)):
        nvec_d, rate = column_rate(values, n, j)
        ax.plot(nvec_d / d, rate, "o-", ms=3, lw=1, color=colour, label=f"d = {d}")
        if np.isfinite(size.centre):
            err = np.nan_to_num([[size.centre - size.centre_ci[0]], [size.centre_ci[1] - size.centre]])
            ax.errorbar([size.centre], [0.5], xerr=err, fmt="|", ms=10, color=colour, capsize=3)
        if finite.wendel:
            x, p = wendel_curve(d, nvec_d[0], nvec_d[-1], finite.wendel)
            ax.plot(x, p, "--", lw=1, color=colour)
    if finite.wendel:
        ax.plot([], [], "--", color="0.3", label=f"Wendel: P(all-ones pattern {finite.wendel})")
    ax.errorbar([], [], xerr=[], fmt="|", color="0.3", capsize=3, label="logistic centre c_d (95% bootstrap)")
    if args.theory:
        ax.axvline(2, color="red", lw=1, label="n = 2d (Wendel)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("n/d (n = round(ratio d))")
    ax.set_ylabel(f"{meta['metric']} rate over {values.shape[2]} trials")
    ax.set_title(title(meta), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right" if meta["metric"] in FALLING else "upper left")
    return transition.table(values, n, dvec, fit_from=getattr(args, "fit_from", 0.0))


def interval(value, ci):
    return f"{value:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"


def finite_figure(analyses):
    """The finite-size figure: per ratio-grid rate [(values, meta, Finite)] a row of three
    panels under the result's title: the centres c_d, the widths w_d with their power law
    (log-log), the collapse."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    from planted import transition  # scipy: only with --fit
    fig = plt.figure(figsize=(15.5, 4.8 * len(analyses)), layout="constrained")
    for sub, (values, meta, finite) in zip(np.atleast_1d(fig.subfigures(len(analyses), 1)), analyses):
        sub.suptitle(title(meta).replace("\n", ", ") + f": finite-size analysis of the {finite.rate} rate",
                     fontsize=10)
        ax_c, ax_w, ax_f = sub.subplots(1, 3)
        dvec, n = np.array(meta["dvec"]), np.array(meta["n"])
        sizes, law, fold = finite.sizes, finite.law, finite.fold
        centre = np.array([f.centre for f in sizes])
        width = np.array([f.width for f in sizes])
        width[~(width > 0)] = np.nan  # a falling or flat rate has no width to draw on a log axis

        def bars(ci, value):
            lo, hi = np.array([c[0] for c in ci]), np.array([c[1] for c in ci])
            return np.nan_to_num(np.vstack([value - lo, hi - value]))
        ax_c.errorbar(dvec, centre, yerr=bars([f.centre_ci for f in sizes], centre), fmt="o", capsize=3,
                      label="c_d = n50/d of the logistic fit (95% bootstrap)")
        if np.isfinite(fold.c):
            ax_c.axhline(fold.c, color="0.4", lw=1, label=f"collapse: c = {interval(fold.c, fold.c_ci)}")
        if finite.wendel:
            ax_c.axhline(2, color="red", ls=":", lw=1.2, label="Wendel: 2 at every d (exact)")
        ax_c.set_ylabel("centre n50/d")
        ax_c.set_title("Centre of the transition", fontsize=10)

        ax_w.errorbar(dvec, width, yerr=bars([f.width_ci for f in sizes], width), fmt="o", capsize=3,
                      label="w_d = (n90 - n10)/d of the logistic fit (95% bootstrap)")
        if np.isfinite(law.a):
            d = np.geomspace(dvec[0], dvec[-1], 50)
            ax_w.plot(d, law(d), color="0.3", lw=1.2,
                      label=f"power law {law.A:.3g} d^-a, a = {interval(law.a, law.a_ci)}")
        if finite.wendel:
            ax_w.plot(dvec, [transition.wendel_width(int(d)) for d in dvec], "--", color="red", lw=1.2,
                      label="Wendel: width of P(all-ones pattern absent)")
        if np.isfinite(width).any() or finite.wendel:
            ax_w.set_yscale("log")
            ax_w.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax_w.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax_w.set_ylabel("width (n90 - n10)/d (log scale)")
        ax_w.set_title("Width of the transition" + (f" ({law.reason})" if law.reason else ""), fontsize=10)

        if np.isfinite(fold.c):
            for j, (d, colour) in enumerate(zip(dvec, colours(len(dvec)))):
                nvec_d, rate = column_rate(finite.outcomes, n, j)
                ax_f.plot(fold.scaled(nvec_d / d, d), rate, "o", ms=3.5, color=colour, label=f"d = {d}")
            x = np.linspace(*ax_f.get_xlim(), 200)
            ax_f.plot(x, fold.rate(x), color="black", lw=1.2,
                      label=f"fit: expit({fold.scale:.3g} x), rms {fold.rms:.3f}")
            ax_f.set_xlabel(f"x = (n/d - c) d^a with c = {fold.c:.3g}, a = {interval(fold.a, fold.a_ci)}")
        ax_f.set_ylabel(f"{finite.rate} rate over {values.shape[2]} trials")
        ax_f.set_title("Collapse: every d on one curve" + (f" ({fold.reason})" if fold.reason else ""),
                       fontsize=10)
        ax_c.set_xlabel("d (dimension, log scale)")
        for ax in (ax_c, ax_w):  # d on a log axis, labelled at the grid's d
            ax.set_xlim(dvec[0] / 1.25, dvec[-1] * 1.25)  # also where no d has a located transition
            ax.set_xscale("log")
            ax.set_xticks(dvec, [str(d) for d in dvec])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("d (dimension, log scale)")
        for ax in (ax_c, ax_w, ax_f):
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7.5)
    return fig


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
    loaded = [plotting.load(parser, path, results.SWEEP_AXES, results.RATIO_AXES) for path in args.results]
    cols = min(args.cols or len(loaded), len(loaded))
    nrows = -(-len(loaded) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(loaded):]:
        ax.set_visible(False)
    tables, finite = [], []
    for ax, path, (values, meta) in zip(axes.flat, args.results, loaded):
        if args.fit and "ratios" in meta and is_rate(values):
            analysis = finite_analysis(values, meta, args.fit_from)
            rows = curves(ax, values, meta, args, analysis)
            finite.append((path, values, meta, analysis))
        else:
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
    if finite:
        rows = [dict(result=Path(path).name, **row) for path, _, _, a in finite
                for row in transition.finite_rows(a.sizes, a.law, a.fold, wendel=a.wendel is not None)]
        second = finite_figure([(values, meta, a) for _, values, meta, a in finite])
        also += [(out.with_name(out.stem + "_finite.csv"),
                  lambda tmp: transition.write_csv(tmp, rows, extra=["result"], columns=transition.FINITE_COLUMNS)),
                 (out.with_name(out.stem + "_finite.png"), lambda tmp: second.savefig(tmp, dpi=130))]
    fig.tight_layout()
    return plotting.save_figure(parser, fig, out, also)


if __name__ == "__main__":
    sys.exit(main() and 0)
