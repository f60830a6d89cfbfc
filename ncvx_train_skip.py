"""Nonconvex (PyTorch) training of the ReLU + skip network on planted linear data.

Same instances as the convex scripts (same seed: same data). Trains f(X) = (X w0) a0 +
(X W)_+ a (§5) and saves dis_abs = ||a0 w0 - w||, dis_test = ||f(X_test) - y_test||,
the final training loss, and every loss curve (an extra epoch axis).
--protocol paper (default) trains as the published figures were made, steady with one optimizer
(planted.networks).
"""
import numpy as np

import utils
from planted import data, networks


def cell(args, n, d, rng):
    inst = data.skip_instance(n, d, args.optx, args.optw, args.sigma, rng)
    networks.seed_torch(rng)
    net = networks.SkipNet(d, args.m or n + 1)
    losses, f_test, weights = networks.fit(net, inst, args)
    return dict(dis_abs=float(np.linalg.norm(net.skip_weight() - inst["w"])),
                dis_test=float(np.linalg.norm(f_test - inst["y_test"])),
                loss=losses[-1], loss_curve=losses, details=dict(inst, **weights))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], solver=False, training=True)
    networks.protocol_flag(parser)
    utils.run(parser, cell, ["dis_abs", "dis_test", "loss", "loss_curve"],
              result_flags=[*utils.TRAINING_FLAGS, "protocol"])
