"""Benchmark of the [LLR] training step: the closed-form gradient against autograd.

`llr_train.py` takes every gradient step with planted.llr.mse_and_grad, the gradient of the
weighted training loss of a whole batch of runs written as batched matrix products. The
reference is the same loss through the model's forward pass (Arch.forward_features) and
torch.autograd.grad. For each (family, width N) both are timed, in this run, on the batch of
the default grid's widest bucket (5 trials x 63 sizes = 315 runs, zero-padded to n = 63
samples), in float64 on one thread, alternating the two so that a shared machine's load hits
both alike. It prints per (family, N) the milliseconds per step of each, their ratio
(autograd / closed form), and checks that both give the same gradient (to 1e-10).

    python bench_llr.py                       # every family at N = 1, 3, 10, 34, 100
    python bench_llr.py --widths 1,10 --steps 5
"""
import time

import numpy as np
import torch

import llr_train
from planted import llr
from planted.cli import Parser, positive_int


def autograd_step(arch, theta, Z, Y, W):
    theta = theta.detach().requires_grad_(True)
    loss = (((arch.forward_features(theta, Z) - Y) ** 2) * W).sum(1)
    grad, = torch.autograd.grad(loss.sum(), theta)
    return loss.detach(), grad


def closed_step(arch, theta, Z, Y, W):
    return llr.mse_and_grad(arch, theta, Z, Y, W)


def timed(step, args, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        out = step(*args)
    return (time.perf_counter() - t0) / steps, out


def batch(family, N, runs, n, seed=0):
    """A batch of `runs` networks of (family, N) on n Gaussian inputs, weights 1/n, and
    parameters of the size gradient descent sees after the tiny init's plateau (N(0, 1/M))."""
    arch, _ = llr_train.family_arch(family, N)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(runs, n, arch.d, generator=g, dtype=torch.float64)
    Y = torch.randn(runs, n, generator=g, dtype=torch.float64)
    W = torch.full((runs, n), 1.0 / n, dtype=torch.float64)
    theta = torch.randn(runs, arch.param_count, generator=g, dtype=torch.float64) / arch.param_count**0.5
    return arch, (arch, theta, arch.features(X), Y, W)


def main(argv=None):
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--families", type=llr_train.family_list, default="cnn,cnn-ns,fc")
    p.add_argument("--widths", type=llr_train.int_list, default="1,3,10,34,100")
    p.add_argument("--runs", type=positive_int, default=315, help="networks in the batch (default: 5 x 63)")
    p.add_argument("--n", type=positive_int, default=63, help="samples per network (padded size)")
    p.add_argument("--steps", type=positive_int, default=20, help="timed steps per method and round")
    p.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds; the median is kept")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'family':8s} {'N':>4s} {'params':>7s} {'autograd ms':>12s} {'closed ms':>10s} {'ratio':>6s}"
          f" {'max |grad diff|':>16s}")
    ratios = []
    for family in args.families:
        for N in args.widths:
            arch, inputs = batch(family, N, args.runs, args.n)
            ref, fast = [], []
            for _ in range(args.rounds):
                t, (loss_a, grad_a) = timed(autograd_step, inputs, args.steps)
                ref.append(t)
                t, (loss_c, grad_c) = timed(closed_step, inputs, args.steps)
                fast.append(t)
            diff = float((grad_a - grad_c).abs().max())
            if diff > 1e-10 or float((loss_a - loss_c).abs().max()) > 1e-10:
                raise SystemExit(f"bench_llr: {family} N={N}: the gradients differ by {diff:.2e}")
            ratio = np.median(ref) / np.median(fast)
            ratios.append(ratio)
            print(f"{family:8s} {N:4d} {arch.param_count:7d} {1e3 * np.median(ref):12.2f}"
                  f" {1e3 * np.median(fast):10.2f} {ratio:6.2f} {diff:16.1e}")
    print(f"median speed-up of the closed-form step over autograd: {np.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
