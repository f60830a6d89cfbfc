"""Recovery rate of k planted ReLU neurons by the minimal-norm normalization-layer program.

For every (n, d) cell and trial: k = --neu planted neurons with normalization labels
y = sum_j (X w_j)_+ / ||(X w_j)_+|| + z (§1), patterns with the planted ones first
(§2), the relaxed or exact program on compact-SVD blocks (§3e), and rec = "every block is the
planted w_hat_j or 0" (§4). The programs need n >= d: cells with n < d are NaN.
"""
import utils
from planted import data, recovery, solve


def cell(args, n, d, rng):
    inst, why = data.relu_cell(args, n, d, rng, normalize=True)
    if why:
        return dict(status=why)
    B, cols, planted = recovery.norm_setup(inst, rng)
    sol = solve.solve_norm(B, inst["y"], form=args.form, solver=args.solver)
    return dict(rec=recovery.blocks_recovered(sol, planted), status=sol.status,
                details=dict(inst, M=B.M, cols=cols, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], neurons=True)
    parser.add_argument("--form", default="relaxed", choices=solve.FORMS,
                        help="relaxed: min sum ||w_i|| s.t. sum U_i w_i = y; exact: with the cones (§3e)")
    utils.run(parser, cell, ["rec"], result_flags=["neu", "form"])
