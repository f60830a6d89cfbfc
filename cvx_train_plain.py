"""Convex training of the plain ReLU network: distance to k planted ReLU neurons.

The weight-decay program of §3c without the skip block (§3d), 1/2 ||sum_i D_i X
(w_i - w_i') - y||^2 + beta * (group norms), with the cones; dis_abs and dis_test as in
minnrm_plain.py.
"""
import utils
from planted import data, recovery, solve


def cell(args, n, d, rng):
    inst, why = data.relu_cell(args, n, d, rng, normalize=False)
    if why:
        return dict(status=why)
    M, cols, planted = recovery.plain_setup(inst, rng)
    sol = solve.solve_relu(inst["X"], M, inst["y"], beta=args.beta, skip=False, solver=args.solver)
    return recovery.plain_distances(sol, planted, cols, inst) | dict(
        status=sol.status, details=dict(inst, M=M, cols=cols, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], neurons=True)
    parser.add_argument("--beta", type=utils.nonnegative_float, default=1e-6,
                        help="weight decay of the training program")
    utils.run(parser, cell, ["dis_abs", "dis_test"], result_flags=["neu", "beta"])
