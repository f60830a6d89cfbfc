"""Neural isometry conditions (docs/reference.md §6): how often a dual certificate proves recovery.

For every (n, d) cell and trial, one condition of planted.conditions at the planted point
(--condition linear, nic1, nick, norm1, normk). Saves, per trial, `holds` and `value` (the
largest dual norm over the non-planted blocks, which must be < 1); with --compare it also
solves the matching relaxed program and saves `rec` and `gap` = rec - holds (-1 would refute
the theory). These are the irrepresentability experiments of §2: max(2n, 50) directions.
"""
import utils
from planted import conditions, data


def cell(args, n, d, rng):
    if args.condition == "linear":
        inst = data.skip_instance(n, d, args.optx, args.optw, args.sigma, rng)
    else:
        inst, why = data.relu_cell(args, n, d, rng, normalize=args.condition.startswith("norm"))
        if why:
            return dict(status=why)
    out, details = conditions.check_instance(args.condition, inst, rng, args.compare, args.solver)
    return dict(out, details=details)


def _check_flags(a):
    if a.condition in ("linear", "nic1", "norm1") and a.neu != 1:
        return (f"--condition {a.condition} has one planted neuron: it needs --neu 1"
                " (use nick or normk for k > 1)")
    if a.condition == "linear" and a.optw == 2:
        return ("--condition linear plants a linear neuron: --optw 0 (Gaussian)"
                " or 1 (smallest singular direction)")
    if a.compare and a.sigma != 0:
        return "--compare: the conditions certify noiseless recovery; use --sigma 0"
    return None


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], neurons=True)
    parser.add_argument("--condition", required=True, choices=conditions.CONDITIONS, help="which condition of §6")
    parser.add_argument("--compare", action="store_true",
                        help="also solve the matching relaxed program: saves rec and gap = rec - holds")
    parser.add_check(_check_flags)
    compare = parser.parse_args().compare  # the metrics depend on it; utils.run parses again
    metrics = ["holds", "value"] + (["rec", "gap"] if compare else [])
    utils.run(parser, cell, metrics, result_flags=["condition", "neu"])
