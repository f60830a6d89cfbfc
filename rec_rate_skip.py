"""Recovery rate of the planted linear neuron by the minimal-norm ReLU + skip program.

For every (n, d) cell and trial: planted data y = X w + z (§1), sampled patterns
(§2), the relaxed (§3a) or exact (§3b) program, and rec = "the solution is the planted
neuron" (§4). Saves rec and whether the all-ones pattern was present (where it is, the
relaxed optimum is a tie and the planted model cannot be recovered).
"""
import utils
from planted import data, patterns, recovery, solve


def cell(args, n, d, rng):
    inst = data.skip_instance(n, d, args.optx, args.optw, args.sigma, rng)
    M, ones = patterns.decided_skip_patterns(inst["X"], rng)
    sol = solve.solve_relu(inst["X"], M, inst["y"], form=args.form, solver=args.solver)
    return dict(rec=recovery.skip_recovered(sol, inst["w"]), all_ones=patterns.has_all_ones(M),
                status=sol.status, details=dict(inst, M=M, **ones.arrays(), **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--form", default="relaxed", choices=solve.FORMS,
                        help="relaxed: group basis pursuit (§3a); exact: with cone constraints (§3b)")
    utils.run(parser, cell, ["rec", "all_ones"], result_flags=["form"])
