"""Recovery rate of k planted ReLU neurons by the minimal-norm plain ReLU program.

For every (n, d) cell and trial: k = --neu planted neurons with labels y = sum_j (X w_j)_+ + z
(§1), patterns with the planted ones first (§2), the plain relaxed program (one
block per pattern, no cones) or the exact one (§3d), and rec = "block s_j is w_j, every
other block 0" to 1e-4 (the §4 metric for planted ReLU neurons).
"""
import utils
from planted import data, recovery, solve


def cell(args, n, d, rng):
    inst, why = data.relu_cell(args, n, d, rng, normalize=False)
    if why:
        return dict(status=why)
    M, cols, planted = recovery.plain_setup(inst, rng)
    sol = solve.solve_relu(inst["X"], M, inst["y"], form=args.form, skip=False, solver=args.solver)
    return dict(rec=recovery.blocks_recovered(sol, planted), status=sol.status,
                details=dict(inst, M=M, cols=cols, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], neurons=True)
    parser.add_argument("--form", default="relaxed", choices=solve.FORMS,
                        help="relaxed: one block per pattern, no cones; exact: with the cones (§3d)")
    utils.run(parser, cell, ["rec"], result_flags=["neu", "form"])
