"""Distance of the minimal-norm ReLU + skip solution to the planted linear neuron.

Same instances as rec_rate_skip.py (same seed: same data). dis_abs = ||w0 - w|| and
dis_test = ||f(X_test) - y_test|| of the solution mapped to a ReLU network (§4).
unique: 1 where the optimum is a single point, 0 where it is a tie (any point of the optimal
face is a solution, so the distances there depend on the solver), NaN under a CVXPY solver.
"""
import numpy as np

import utils
from planted import data, patterns, recovery, solve


def cell(args, n, d, rng):
    inst = data.skip_instance(n, d, args.optx, args.optw, args.sigma, rng)
    M = patterns.skip_patterns(inst["X"], rng)
    sol = solve.solve_relu(inst["X"], M, inst["y"], form=args.form, solver=args.solver)
    return recovery.skip_distances(sol, inst) | dict(
        unique=np.nan if sol.unique is None else float(sol.unique), status=sol.status,
        details=dict(inst, M=M, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--form", default="relaxed", choices=solve.FORMS,
                        help="relaxed: group basis pursuit (§3a); exact: with cone constraints (§3b)")
    utils.run(parser, cell, ["dis_abs", "dis_test", "unique"], result_flags=["form"])
