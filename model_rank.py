"""Model rank of a target in a tanh architecture: numerical, closed form, empirical curve ([LLR]).

    python model_rank.py --arch cnn --target fig3 --width 10 [--json]
    python model_rank.py --arch fc --target random --k 2 --d 4 --width 3
    python model_rank.py --arch cnn2d --target random --k 1 --d 6 --s 3 --width 2
    python model_rank.py --arch deep-fc --target random --k 2 --d 4 --layers 3 --width 2
    python model_rank.py --arch fc --target weights.npz --width 5
    python model_rank.py --table --d 28 --s 3 --k 1

The target is placed at the most condensed point of the N-times-wider network
(docs/reference.md §8: every unit split N ways, or kept with null units beside it), the tangent
matrix is built in float64 over many Gaussian inputs with torch.func, and its singular values
above 1e-10 of the largest are counted. Also printed: the closed form of §8 for the target's k
units (exact, or an upper bound for deep networks), the parameter count, and the empirical model
rank (rank on the first n inputs) for growing n, whose first n reaching the model rank is the
optimistic sample size. A file target is an .npz of the narrow weights named as in
planted/llr.py (W, b, a; K, b, A; W1, ..., a for deep-fc).
"""
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from planted import llr  # torch, not cvxpy: nothing here solves a convex program
from planted.cli import Parser, check_memory, nonnegative_int, positive_float, positive_int

DEFAULTS = dict(k=1, d=5, s=3, layers=2)  # the random target's sizes when not given
TABLE_DEFAULTS = dict(k=1, d=28, s=3)     # the 2-D example of §8 (685k, 6760k, 530660k)


def make_parser():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=llr.ARCHS, help="architecture (required unless --table)")
    p.add_argument("--target", help="fig3, random, or the path of an .npz of narrow weights")
    p.add_argument("--width", type=positive_int, default=1,
                   help="width multiplier N: the network has N times the target's units per layer")
    p.add_argument("--k", type=positive_int, help="random target: units (kernels) per layer (default 1)")
    p.add_argument("--d", type=positive_int,
                   help="random target: input size, d x d for 2-D (default 5; --table: 28)")
    p.add_argument("--s", type=positive_int, help="random target: kernel size of the CNNs (default 3)")
    p.add_argument("--layers", type=positive_int, help="random deep-fc target: hidden layers (default 2)")
    p.add_argument("--embedding", choices=("split", "null"), default="split",
                   help="how the target sits in the wide network: units split N ways, or null units added")
    p.add_argument("--samples", type=positive_int,
                   help="Gaussian inputs of the tangent matrix (default: 2 x parameters + 50, capped)")
    p.add_argument("--rtol", type=positive_float, default=llr.RTOL,
                   help="singular values above rtol x the largest count")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the random target and of the inputs")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--insist", action="store_true",
                   help="run even when the tangent matrix looks too large for this machine's memory")
    p.add_argument("--table", action="store_true", help="print the closed-form table of §8 for --d, --s, --k")
    return p


def target(parser, args):
    """(narrow Arch, its parameters, a description), or a one-line usage error."""
    sized = [f"--{name}" for name in DEFAULTS if getattr(args, name) is not None]
    if args.target != "random" and sized:
        parser.error(f"{', '.join(sized)}: sizes of a random target only; --target {args.target} fixes its own")
    if args.target == "fig3":
        try:
            arch, params = llr.fig3_target(args.arch)
        except ValueError as e:
            parser.error(f"--target fig3: {e}")
        return arch, params, "fig3"
    if args.target == "random":
        k, d, s, layers = (getattr(args, name) or DEFAULTS[name] for name in DEFAULTS)
        if args.arch in llr.CONV and s > d:
            parser.error(f"--s {s} is larger than --d {d}")
        if args.arch != "deep-fc" and args.layers is not None:
            parser.error("--layers is for --arch deep-fc")
        s = s if args.arch in llr.CONV else 0
        arch, params = llr.random_target(args.arch, k, d, s, layers, rng=args.seed)
        return arch, params, "random"
    path = Path(args.target)
    if not path.is_file():
        parser.error(f"--target {args.target}: not fig3, random, or an existing .npz file")
    check_weights(parser, args.target)
    try:
        arch, params = llr.load_target(path, args.arch)
    except (ValueError, OSError) as e:
        parser.error(f"--target {args.target}: {e}")
    return arch, params, str(path)


def check_weights(parser, name):
    """That --target F is an .npz of real, finite arrays, or a one-line usage error (np.load
    would take an .npy too, and casting would drop an imaginary part in silence)."""
    try:
        f = np.load(name, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        parser.error(f"--target {name}: not a readable .npz file of weights (empty, truncated or text)")
    if not isinstance(f, np.lib.npyio.NpzFile):
        parser.error(f"--target {name}: an .npy array; give an .npz of named weights (see --help)")
    try:
        with f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        parser.error(f"--target {name}: an .npz file with a damaged array")
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            parser.error(f"--target {name}: weights {k!r} are {a.dtype}, not real numbers")
        if not np.isfinite(a).all():
            parser.error(f"--target {name}: weights {k!r} hold NaN or infinite values")


def table(parser, args):
    if args.arch or args.target:
        parser.error("--table takes only --d, --s, --k (and --width, --json)")
    k, d, s = (getattr(args, name) or TABLE_DEFAULTS[name] for name in TABLE_DEFAULTS)
    if s > d:
        parser.error(f"--s {s} is larger than --d {d}")
    rows = [dict(family=f, formula=form, model_rank=r, param_count=args.width * m)
            for f, form, r, m in llr.closed_form_table(d, s, k)]
    if args.json:
        print(json.dumps(dict(d=d, s=s, k=k, width=args.width, rows=rows)))
        return
    print(f"Model rank of a target of k={k} kernel(s) of size s={s} (s x s in 2-D) on inputs of size "
          f"d={d} (d x d in 2-D), two-layer tanh networks (docs/reference.md §8); parameters at width N={args.width}")
    w, f = max(len(r["family"]) for r in rows), max(len(r["formula"]) for r in rows)
    print(f"{'architecture':{w}}  {'model rank':>10}  {'formula':{f}}  {'parameters':>10}")
    for r in rows:
        print(f"{r['family']:{w}}  {r['model_rank']:>10}  {r['formula']:{f}}  {r['param_count']:>10}")


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.table:
        return table(parser, args)
    if not args.arch or not args.target:
        parser.error("--arch and --target are required (or give --table)")
    narrow, params, name = target(parser, args)
    size = llr.widen(narrow, args.width)
    n = args.samples or max(llr.default_samples(size), 1)
    if not args.insist:  # the inputs, the n x parameters tangent matrix, its SVD's factors
        inputs = int(np.prod(size.input_shape))
        check_memory(parser, 8 * n * (inputs + 4 * size.param_count),
                     f"the tangent matrix ({n:,} inputs x {size.param_count:,} parameters)",
                     "use a smaller --width or --samples")
    arch, wide = llr.embed(narrow, params, args.width, args.embedding)
    out = llr.model_rank(arch, wide, n, rng=args.seed, rtol=args.rtol)
    r = out["model_rank"]
    ns = llr.curve_sizes(r, n)
    curve = llr.empirical_rank_curve(out["Jr"], ns, args.rtol)
    closed, kind = llr.closed_form(narrow)
    result = dict(
        arch=args.arch, target=name, width=args.width, embedding=args.embedding,
        k=narrow.units[0], d=narrow.d, s=narrow.s or None,
        narrow_widths=list(narrow.units), widths=list(arch.units),
        model_rank=r, closed_form=closed, closed_form_kind=kind,
        param_count=arch.param_count, narrow_param_count=narrow.param_count,
        singular_value_gap=out["singular_value_gap"], n_samples=n, rtol=args.rtol,
        reliable=out["reliable"],
        empirical_rank=dict(n=ns, rank=curve),
        optimistic_sample_size=llr.optimistic_size(ns, curve, r))
    if not any(np.any(p) for p in params.values()):
        print("model_rank: note: the target is the zero network: every tangent function vanishes"
              " there, so its model rank is 0; the closed form counts a generic target", file=sys.stderr)
    if not out["reliable"]:
        print(f"model_rank: warning: rank {r} is close to the {n} inputs used; more (--samples) may "
              "raise it", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return result
    gap = result["singular_value_gap"]
    print(f"{args.arch}, target {name} (k={result['k']} unit(s) per layer, d={narrow.d}"
          + (f", s={narrow.s}" if narrow.s else "") + f"), width multiplier N={args.width}")
    print(f"parameters:          {arch.param_count} (narrowest network: {narrow.param_count})")
    print(f"model rank:          {r} (float64 tangent matrix on {n} Gaussian inputs, "
          f"{args.embedding} embedding, singular values > {args.rtol:g} x largest)")
    print(f"closed form (§8):    {closed}" + (" (upper bound)" if kind != "exact" else ""))
    print("singular-value gap:  " + ("none cut" if gap is None else f"sigma_{r}/sigma_{r + 1} = {gap:.2e}"))
    print(f"optimistic sample size: {result['optimistic_sample_size']}")
    print("empirical model rank (n: rank): " + "  ".join(f"{a}:{b}" for a, b in zip(ns, curve)))
    return result


if __name__ == "__main__":
    main()
