"""Nonconvex (PyTorch) training of the plain ReLU network on k planted ReLU neurons.

Same instances as the convex plain scripts (same seed: same data). Trains f(X) = (X W)_+ a
(§5) and saves dis_test = ||f(X_test) - y_test||, the final training loss and
every loss curve (an extra epoch axis).
--protocol paper (default) trains as the published figures were made, steady with one optimizer
(planted.networks).
"""
import numpy as np

import utils
from planted import data, networks


def cell(args, n, d, rng):
    inst, why = data.relu_cell(args, n, d, rng, normalize=False)
    if why:
        return dict(status=why)
    networks.seed_torch(rng)
    net = networks.PlainNet(d, args.m or n + 1)
    losses, f_test, weights = networks.fit(net, inst, args)
    return dict(dis_test=float(np.linalg.norm(f_test - inst["y_test"])), loss=losses[-1],
                loss_curve=losses, details=dict(inst, **weights))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], solver=False, neurons=True, training=True)
    networks.protocol_flag(parser)
    utils.run(parser, cell, ["dis_test", "loss", "loss_curve"], result_flags=["neu", *utils.TRAINING_FLAGS, "protocol"])
