"""Distance of the minimal-norm plain ReLU solution to k planted ReLU neurons.

Same instances as rec_rate_plain.py (same seed: same data). dis_abs = sqrt(sum_j ||block_{s_j}
- w_j||^2) in the convex variables, dis_test = ||f(X_test) - y_test|| of the solution mapped
to a ReLU network, real ReLUs (§3d, §4).
unique: 1 where the optimum is a single point, 0 where it is a tie (any point of the optimal
face is a solution, so the distances there depend on the solver), NaN under a CVXPY solver.
"""
import numpy as np

import utils
from planted import data, recovery, solve


def cell(args, n, d, rng):
    inst, why = data.relu_cell(args, n, d, rng, normalize=False)
    if why:
        return dict(status=why)
    M, cols, planted = recovery.plain_setup(inst, rng)
    sol = solve.solve_relu(inst["X"], M, inst["y"], form=args.form, skip=False, solver=args.solver)
    return recovery.plain_distances(sol, planted, cols, inst) | dict(
        unique=np.nan if sol.unique is None else float(sol.unique), status=sol.status,
        details=dict(inst, M=M, cols=cols, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], neurons=True)
    parser.add_argument("--form", default="relaxed", choices=solve.FORMS,
                        help="relaxed: one block per pattern, no cones; exact: with the cones (§3d)")
    utils.run(parser, cell, ["dis_abs", "dis_test", "unique"], result_flags=["neu", "form"])
