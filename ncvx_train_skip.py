"""Nonconvex (PyTorch) training of the ReLU + skip network on planted linear data.

Same instances as the convex scripts (same seed: same data). Trains f(X) = (X w0) a0 +
(X W)_+ a (reference §5) and saves dis_abs = ||a0 w0 - w||, dis_test = ||f(X_test) - y_test||,
the final training loss, and every loss curve (an extra epoch axis).
"""
import numpy as np

import data
import networks
import utils


def cell(args, n, d, rng):
    inst = data.skip_instance(n, d, args.optx, args.optw, args.sigma, rng)
    networks.seed_torch(rng)
    net = networks.SkipNet(d, args.m or n + 1)
    losses = networks.train(net, inst["X"], inst["y"], args.epochs, args.lr, args.beta,
                            args.device, args.optimizer)
    f_test = networks.predict(net, inst["X_test"], args.device)
    return dict(dis_abs=float(np.linalg.norm(net.skip_weight() - inst["w"])),
                dis_test=float(np.linalg.norm(f_test - inst["y_test"])),
                loss=losses[-1], loss_curve=losses,
                details=dict(inst, **{k: v.cpu().numpy() for k, v in net.state_dict().items()}))


if __name__ == "__main__":
    parser = utils.experiment_parser(__doc__.splitlines()[0], solver=False)
    t = parser.add_argument_group("training")
    t.add_argument("--epochs", type=utils.positive_int, default=400)
    t.add_argument("--lr", type=utils.positive_float, default=2e-3, help="AdamW learning rate")
    t.add_argument("--beta", type=utils.nonnegative_float, default=1e-6, help="weight decay")
    t.add_argument("--optimizer", default="adamw", choices=sorted(networks.OPTIMIZERS),
                   help="adamw: decoupled decay (paper); adam: coupled L2 penalty")
    t.add_argument("--m", type=utils.positive_int, default=None, help="hidden width (default n + 1)")
    t.add_argument("--device", type=networks.device, default="cpu",
                   help="torch device: cpu (default), cuda, cuda:1, ...")
    utils.run(parser, cell, ["dis_abs", "dis_test", "loss", "loss_curve"],
              result_flags=["epochs", "lr", "beta", "m", "optimizer"])
