"""Convex training of the normalization-layer network: distance to k planted ReLU neurons.

The weight-decay program of §3e, 1/2 ||sum_i U_i (w_i - w_i') - y||^2 + beta *
(group norms), with the cones; dis_abs and dis_test as in minnrm_norm.py. NaN where n < d.
"""
import utils
from planted import data, recovery, solve


def cell(args, n, d, rng):
    inst, why = data.relu_cell(args, n, d, rng, normalize=True)
    if why:
        return dict(status=why)
    B, cols, planted = recovery.norm_setup(inst, rng)
    sol = solve.solve_norm(B, inst["y"], beta=args.beta, solver=args.solver)
    return recovery.norm_distances(sol, B, planted, cols, inst) | dict(
        status=sol.status, details=dict(inst, M=B.M, cols=cols, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], neurons=True)
    parser.add_argument("--beta", type=utils.nonnegative_float, default=1e-6,
                        help="weight decay of the training program")
    utils.run(parser, cell, ["dis_abs", "dis_test"], result_flags=["neu", "beta"])
