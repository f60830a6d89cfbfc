"""Convex training of the ReLU + skip network: distance to the planted linear neuron.

The weight-decay program of §3c, 1/2 ||fit - y||^2 + beta * (group norms), with
the cone constraints; dis_abs and dis_test as in minnrm_skip.py.
"""
import utils
from planted import data, patterns, recovery, solve


def cell(args, n, d, rng):
    inst = data.skip_instance(n, d, args.optx, args.optw, args.sigma, rng)
    M = patterns.skip_patterns(inst["X"], rng)
    sol = solve.solve_relu(inst["X"], M, inst["y"], beta=args.beta, solver=args.solver)
    return recovery.skip_distances(sol, inst) | dict(
        status=sol.status, details=dict(inst, M=M, **sol.arrays()))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--beta", type=utils.nonnegative_float, default=1e-6,
                        help="weight decay of the training program")
    utils.run(parser, cell, ["dis_abs", "dis_test"], result_flags=["beta"])
