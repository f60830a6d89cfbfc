"""Figure 3 of [LLR]: heatmaps of log10 test error over (training size n, width N), one per family.

    python plot_llr.py RESULT.npy --out FIG.png [--trial_mean log]

RESULT.npy is the test-MSE array of llr_train.py (family, N, n, trial) with its JSON sidecar.
Colour: log10 of the test MSE averaged over trials (docs/reference.md §8: "average test error,
log scale"). Dashed white line: the model rank of the target in the family (the optimistic sample
size). Red ticks: each row's parameter count, written at the right edge (most lie beyond the
largest n drawn).
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

from planted import plotting, results  # plotting selects the headless Agg backend
from planted.cli import Parser

NAMES = {"cnn": "CNN (shared kernel)", "cnn-ns": "CNN without weight sharing", "fc": "fully connected"}
UNITS = {"cnn": "{N} kernels", "cnn-ns": "{N} kernel sets", "fc": "{N3} neurons"}


def average(values, how):
    """Trial average of the test MSE: arithmetic (the paper's 'average test error') or geometric.
    A diverged run (NaN) counts as missing."""
    with np.errstate(all="ignore"):
        if how == "log":
            return 10 ** np.nanmean(np.log10(values), axis=-1)
        return np.nanmean(values, axis=-1)


def panel(ax, mean, meta, family, vmin, vmax):
    sizes, widths = np.array(meta["sizes"]), meta["widths"]
    rows = np.arange(len(widths))
    with np.errstate(divide="ignore"):
        image = ax.pcolormesh(plotting.edges(sizes), plotting.edges(rows),
                              np.ma.masked_invalid(np.log10(mean)), cmap="viridis", vmin=vmin, vmax=vmax,
                              shading="flat")
    rank = meta["model_rank"][family]
    ax.axvline(rank, color="white", ls="--", lw=1.6)
    ax.plot([], [], color="0.45", ls="--", lw=1.6, label=f"model rank {rank} (white dashes)")  # shows on white
    counts = meta["param_count"][family]
    for row, count in zip(rows, counts):
        if count <= sizes[-1]:
            ax.plot([count, count], [row - 0.45, row + 0.45], color="red", lw=2.2)
        ax.text(1.01, row, f"{count}", transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                color="red")
    ax.plot([], [], color="red", lw=2.2, label="parameter count (right: value)")
    ax.set_yticks(rows)
    ax.set_yticklabels([str(N) for N in widths])
    ax.set_xlabel("training sample size n")
    ax.set_ylabel("width multiplier N")
    units = UNITS[family].format(N="N", N3="3N")
    ax.set_title(f"{NAMES[family]}: {units}, {counts[0]}N parameters", fontsize=10)
    # below the axes: inside, it would hide the N = 1 row, where the recovery shows best
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7.5, frameon=False)
    return image


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="test-MSE .npy of llr_train.py (with its .json sidecar)")
    parser.add_argument("--out", default=None, help="PNG to write (default: the result's name, .png)")
    parser.add_argument("--trial_mean", choices=("arithmetic", "log"), default="arithmetic",
                        help="average the trials' test MSE (default) or their log10")
    args = parser.parse_args(argv)
    out = plotting.out_path(parser, args.out, args.result)
    values, meta = plotting.load(parser, args.result, results.LLR_AXES)
    mean = average(values, args.trial_mean)
    with np.errstate(divide="ignore"):
        logs = np.log10(mean[np.isfinite(mean) & (mean > 0)])
    vmin, vmax = (logs.min(), logs.max()) if logs.size else (-12, 1)
    families = meta["families"]
    fig, axes = plt.subplots(1, len(families), figsize=(5.4 * len(families), 4.3), squeeze=False)
    for ax, i in zip(axes[0], range(len(families))):
        image = panel(ax, mean[i], meta, families[i], vmin, vmax)
    flags = meta["flags"]
    lr = "lr per (family, N)" if flags["lr"] == "auto" else f"lr {flags['lr']}"
    fig.suptitle(f"Local linear recovery of f*(x) = sum_s tanh(0.6 x_s + 0.8 x_(s+1) + x_(s+2)), x in R^5: "
                 f"GD, {lr}, init var {flags['init_var']:g}, stop at {meta['stopping_rule']}, "
                 f"{flags['sample']} trial(s)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.93, 0.95))
    cax = fig.add_axes((0.945, 0.15, 0.012, 0.7))
    mean_word = "mean" if args.trial_mean == "arithmetic" else "geometric mean"
    fig.colorbar(image, cax=cax, label=f"log10 test MSE ({mean_word} over trials)")
    return plotting.save_figure(parser, fig, out)


if __name__ == "__main__":
    sys.exit(main() and 0)
