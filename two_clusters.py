"""The two-cluster experiment of [NI]: how often u = mu_1/||mu_1|| - mu_2/||mu_2|| splits two Gaussian clusters.

    python two_clusters.py [--n 100] [--d 20,40,60,80] [--sigma 1:8.5:0.5] [--draws 5000]
                           [--means unit|sign|raw] [--seed 0] [--save_folder results] [--out FIG.png]

n/2 rows mu_1 + z and n/2 rows mu_2 + z, z ~ N(0, I_d / sigma^2) (sigma: inverse noise level),
per (d, sigma) `--draws` independent draws of means and data (planted.clusters,
docs/reference.md §10). Saves two_clusters_<tail>.npy, the fraction of draws where u splits the
clusters (d x sigma), and two_clusters_given_means_<tail>.npy, the mean over the same draws of
the closed-form probability given the means (a check, with less noise), each with a JSON
sidecar; and the line plot (probability against sigma, one curve per d) as --out (default: the
result's name, .png).
"""
import datetime
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from planted import clusters, plotting, results  # plotting selects the headless Agg backend
from planted.cli import Parser, nonnegative_int, number_list, positive_int

DEFAULTS = dict(n=100, d="20,40,60,80", sigma="1:8.5:0.5", draws=5000, means="unit", seed=0)


def make_parser():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=positive_int, default=DEFAULTS["n"], help="rows, n/2 per cluster (even)")
    p.add_argument("--d", default=DEFAULTS["d"], help="dimensions, e.g. 20,40,60,80")
    p.add_argument("--sigma", default=DEFAULTS["sigma"], help="inverse noise levels, e.g. 1:8.5:0.5 or 1,2,4")
    p.add_argument("--draws", type=positive_int, default=DEFAULTS["draws"], help="draws per (d, sigma)")
    p.add_argument("--means", default=DEFAULTS["means"], choices=sorted(clusters.MEANS),
                   help="unit: unit Gaussian directions; sign: +-1 vectors; raw: Gaussian vectors")
    p.add_argument("--seed", type=nonnegative_int, default=DEFAULTS["seed"])
    p.add_argument("--save_folder", default="results", help="where the result files go")
    p.add_argument("--out", default=None, help="the line plot (default: the result's name, .png)")
    p.add_check(lambda a: f"--n {a.n}: the two clusters have n/2 rows each, n must be even"
                if a.n % 2 else None)
    return p


def tail(args):
    """File-name tail: n and draws, then every other result-changing flag not at its default."""
    words = [f"n{args.n}", f"draws{args.draws}"]
    words += [f"{k}{getattr(args, k)}" for k in ("d", "sigma", "means", "seed") if getattr(args, k) != DEFAULTS[k]]
    return "_".join(words).replace(",", "-").replace(":", "-")


def plot(ax, dvec, sigmas, prob, meta):
    for d, row in zip(dvec, prob):
        ax.plot(sigmas, row, "o-", ms=3, label=f"d = {d}")
    ax.set_xlabel("sigma (inverse noise level: z ~ N(0, I / sigma^2))")
    ax.set_ylabel("P(D_u splits the clusters)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Two clusters, n = {meta['flags']['n']}, means: {clusters.MEANS[meta['flags']['means']]},"
                 f" {meta['flags']['draws']} draws per point", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        dvec = number_list(int, args.d)
    except ValueError as e:
        parser.error(f"--d: {e}")
    try:
        sigmas = number_list(float, args.sigma)
    except ValueError as e:
        parser.error(f"--sigma: {e}")
    problem = results.check_folder(args.save_folder)
    if problem:
        parser.error(problem)
    folder = Path(args.save_folder)
    files = results.file_names("two_clusters", tail(args), ["prob", "given_means"])
    out = plotting.out_path(parser, args.out, folder / files["prob"])
    start = time.time()
    prob, given = np.empty((len(dvec), len(sigmas))), np.empty((len(dvec), len(sigmas)))
    for i, d in enumerate(dvec):
        # one generator per d: a curve does not depend on which other d are asked for
        rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(args.n, d)))
        prob[i], given[i] = clusters.split_probability(args.n, d, sigmas, args.draws, args.means, rng)
    meta = dict(experiment="two_clusters", flags=vars(args), argv=sys.argv if argv is None else list(argv),
                axes=["d", "sigma"], dvec=dvec, sigmas=sigmas, files=files, versions=results.versions(),
                date=datetime.datetime.now().isoformat(timespec="seconds"), wall_seconds=round(time.time() - start, 3))
    try:
        results.write(folder, files, dict(prob=prob, given_means=given), meta)
    except OSError as e:
        parser.error(f"cannot write the result files to {folder}: {e.strerror or e}")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    plot(ax, dvec, sigmas, prob, meta)
    fig.tight_layout()
    plotting.save_figure(parser, fig, out)
    print(folder / files["prob"])
    return folder / files["prob"]


if __name__ == "__main__":
    sys.exit(main() and 0)
