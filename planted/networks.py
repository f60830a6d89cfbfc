"""ReLU networks trained with PyTorch (docs/reference.md §5).

No biases; full batch; loss ||f(X) - y||^2 (a sum, not a mean, without 1/2); AdamW with its
weight decay as the regularizer. Two protocols (PROTOCOLS): "paper" creates a new optimizer at
every epoch, as the code behind the published figures did, so that Adam's moments restart and
every update is a first Adam step, close to lr * sign(gradient); "steady" keeps one optimizer for
the whole run, which drives the training loss to interpolation.
"""
import numpy as np
import torch
from torch import nn

from planted.solution import SolveFailed


def device(text):
    """An available torch device, for argparse (a bad one is a usage error, not a traceback)."""
    import argparse
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown torch device {text!r}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text}: not a device that trains; use cpu, cuda or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA device is available here; use cpu")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no MPS device is available here; use cpu")
    return text


def seed_torch(rng):
    """Seed torch from the cell's numpy generator, so initial weights depend on the cell alone."""
    torch.manual_seed(int(rng.integers(2**63 - 1)))


class SkipNet(nn.Module):
    """f(X) = (X w0) a0 + (X W)_+ a: one linear (skip) neuron beside m ReLU neurons."""

    def __init__(self, d, m):
        super().__init__()
        self.skip_in = nn.Linear(d, 1, bias=False)
        self.skip_out = nn.Linear(1, 1, bias=False)
        self.hidden = nn.Linear(d, m, bias=False)
        self.out = nn.Linear(m, 1, bias=False)

    def forward(self, X):
        return (self.skip_out(self.skip_in(X)) + self.out(torch.relu(self.hidden(X)))).squeeze(-1)

    def skip_weight(self):
        """a0 w0: the linear function the skip neuron computes."""
        return (self.skip_out.weight * self.skip_in.weight).detach().cpu().numpy().ravel()


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
PROTOCOLS = ("paper", "steady")


def protocol_flag(parser):
    """The --protocol flag of the training scripts (default paper, the published figures')."""
    parser.add_argument("--protocol", default="paper", choices=PROTOCOLS,
                        help="paper: a new optimizer every epoch, as the published figures were made "
                             "(each update a first Adam step); steady: one optimizer for the whole run")


def train(net, X, y, epochs, lr, beta, device="cpu", optimizer="adamw", protocol="paper"):
    """Full-batch training on ||f(X) - y||^2; returns the loss of every epoch (before its step).

    adamw (§5): decoupled weight decay beta. adam: beta as a coupled L2 penalty
    (gradient of beta/2 ||theta||^2), which, unlike AdamW's decay, pulls the network toward
    the minimal-norm representation the convex programs describe. protocol: see PROTOCOLS.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {PROTOCOLS}")
    net.to(device)
    X = torch.as_tensor(X, dtype=torch.float32, device=device)
    y = torch.as_tensor(y, dtype=torch.float32, device=device)
    make = OPTIMIZERS[optimizer]
    opt = make(net.parameters(), lr=lr, weight_decay=beta)
    losses = np.empty(epochs)
    for epoch in range(epochs):
        if protocol == "paper" and epoch:
            opt = make(net.parameters(), lr=lr, weight_decay=beta)
        opt.zero_grad()
        loss = ((net(X) - y) ** 2).sum()
        loss.backward()
        try:
            opt.step()
        except RuntimeError as e:  # a step size beyond float32 (--lr 1e308)
            raise SolveFailed(f"training diverged: {e}") from None
        losses[epoch] = loss.item()
    return losses


def predict(net, X, device="cpu"):
    with torch.no_grad():
        return net(torch.as_tensor(X, dtype=torch.float32, device=device)).cpu().numpy().astype(float)


class NormNet(nn.Module):
    """f(X) = sum_i a_i gamma_i (X W_i)_+ / ||(X W_i)_+|| (§5), the norm over the n rows
    of the batch; gamma starts at 1 (like a batch-norm scale). A neuron active on no row
    outputs 0 instead of 0/0."""

    def __init__(self, d, m):
        super().__init__()
        self.hidden = nn.Linear(d, m, bias=False)
        self.gamma = nn.Parameter(torch.ones(m))
        self.out = nn.Linear(m, 1, bias=False)

    def forward(self, X):
        H = torch.relu(self.hidden(X))
        H = H / H.norm(dim=0).clamp_min(torch.finfo(H.dtype).tiny)
        return self.out(H * self.gamma).squeeze(-1)


class PlainNet(nn.Module):
    """f(X) = (X W)_+ a: the plain two-layer ReLU network, no biases (§5)."""

    def __init__(self, d, m):
        super().__init__()
        self.hidden = nn.Linear(d, m, bias=False)
        self.out = nn.Linear(m, 1, bias=False)

    def forward(self, X):
        return self.out(torch.relu(self.hidden(X))).squeeze(-1)


def fit(net, inst, args):
    """Train `net` on a cell's instance with the training flags of a script (utils
    experiment_parser(training=True)): (loss curve, predictions on X_test, weights)."""
    losses = train(net, inst["X"], inst["y"], args.epochs, args.lr, args.beta, args.device, args.optimizer,
                   args.protocol)
    if not np.isfinite(losses).all():
        epoch = int(np.argmin(np.isfinite(losses)))
        raise SolveFailed(f"training diverged: the loss is {losses[epoch]} at epoch {epoch} (try a smaller --lr)")
    weights = {k: v.cpu().numpy() for k, v in net.state_dict().items()}
    return losses, predict(net, inst["X_test"], args.device), weights
