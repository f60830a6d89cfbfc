"""Local linear recovery ([LLR], docs/reference.md §8): tanh models, embeddings, model rank.

Every model is a function f(theta, X) of a flat parameter vector theta and a batch of inputs X,
so that torch.func gives the tangent functions (Jacobians) of any architecture the same way.
A network's parameters travel as a dict of named numpy arrays; `Arch.pack` flattens them in
the order of `Arch.shapes`.

Parameter names, per family (m hidden units or kernels, P = d + 1 - s positions per axis):
    fc        W (m, d), b (m,), a (m,)        f(x) = sum_j a_j tanh(W_j x + b_j)
    fc-nobias W (m, d), a (m,)                as fc with b = 0
    cnn       K (m, s), b (m,), A (m, P)      f(x) = sum_j sum_p A_jp tanh(K_j . x[p:p+s] + b_j)
    cnn-ns    K (m, P, s), b (m, P), A (m, P) as cnn, one kernel and bias per position
    cnn2d     K (m, s, s), A (m, P, P)        2-D input d x d, no biases
    cnn2d-ns  K (m, P, P, s, s), A (m, P, P)  as cnn2d, one kernel per position
    deep-fc   W1 (m1, d), W2 (m2, m1), ..., a (m_last,): tanh layers without biases
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacrev, vmap

ARCHS = ("fc", "fc-nobias", "cnn", "cnn-ns", "cnn2d", "cnn2d-ns", "deep-fc")
CONV = ("cnn", "cnn-ns", "cnn2d", "cnn2d-ns")
FIG3_KERNEL = (0.6, 0.8, 1.0)
FIG3_D, FIG3_S = 5, 3
RTOL = 1e-10  # relative singular-value threshold of §8 ("~1e-10 relative")


@dataclass(frozen=True)
class Arch:
    """A two-layer (or deep) tanh network family with its sizes (§8).

    `units`: hidden units (kernels) per hidden layer; one entry except for deep-fc.
    `s`: kernel size of the CNNs (s x s in 2-D); 0 for fully connected families.
    """
    kind: str
    d: int
    units: tuple
    s: int = 0

    def __post_init__(self):
        if self.kind not in ARCHS:
            raise ValueError(f"unknown architecture {self.kind!r}; one of {', '.join(ARCHS)}")
        if self.kind in CONV and not 1 <= self.s <= self.d:
            raise ValueError(f"{self.kind}: kernel size s={self.s} must be between 1 and d={self.d}")
        if self.kind != "deep-fc" and len(self.units) != 1:
            raise ValueError(f"{self.kind} has one hidden layer, got widths {self.units}")

    @property
    def P(self):
        """Positions of a stride-1 convolution per axis: d + 1 - s."""
        return self.d + 1 - self.s

    @property
    def input_shape(self):
        return (self.d, self.d) if self.kind in ("cnn2d", "cnn2d-ns") else (self.d,)

    def shapes(self):
        """(name, shape) of every parameter block, in the order of the flat vector."""
        m, d, s, P = self.units[0], self.d, self.s, self.P
        if self.kind == "fc":
            return [("W", (m, d)), ("b", (m,)), ("a", (m,))]
        if self.kind == "fc-nobias":
            return [("W", (m, d)), ("a", (m,))]
        if self.kind == "cnn":
            return [("K", (m, s)), ("b", (m,)), ("A", (m, P))]
        if self.kind == "cnn-ns":
            return [("K", (m, P, s)), ("b", (m, P)), ("A", (m, P))]
        if self.kind == "cnn2d":
            return [("K", (m, s, s)), ("A", (m, P, P))]
        if self.kind == "cnn2d-ns":
            return [("K", (m, P, P, s, s)), ("A", (m, P, P))]
        fan_in = (d,) + tuple(self.units[:-1])
        return [(f"W{l + 1}", (w, f)) for l, (w, f) in enumerate(zip(self.units, fan_in))] + \
               [("a", (self.units[-1],))]

    @property
    def param_count(self):
        return sum(math.prod(shape) for _, shape in self.shapes())

    def pack(self, params):
        """The flat float64 vector of a dict of named arrays (checked against `shapes`)."""
        parts = []
        for name, shape in self.shapes():
            if name not in params:
                raise ValueError(f"{self.kind}: parameter {name} missing")
            value = np.asarray(params[name], dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{self.kind}: parameter {name} has shape {value.shape}, expected {shape}")
            parts.append(value.ravel())
        return np.concatenate(parts)

    def unpack(self, theta):
        """Named views into a flat vector, or a batch of them (..., M); numpy or torch, and
        fine under vmap and jacrev."""
        out, start = {}, 0
        for name, shape in self.shapes():
            size = math.prod(shape)
            out[name] = theta[..., start:start + size].reshape(theta.shape[:-1] + shape)
            start += size
        return out

    def features(self, X):
        """What the hidden layer reads: X (fully connected) or its sliding windows, (..., n, P, s)
        in 1-D and (..., n, P, P, s, s) in 2-D (stride 1), with a constant 1 appended to each
        input or window where the layer has biases, so the bias rides in the same matmul.
        Computed once when training: the features of a fixed training set never change."""
        if self.kind not in CONV:
            return _with_ones(X) if self.kind == "fc" else X
        pos = torch.arange(self.P, device=X.device)
        off = torch.arange(self.s, device=X.device)
        idx = pos[:, None] + off[None, :]
        if self.kind in ("cnn", "cnn-ns"):
            return _with_ones(X[..., idx])
        return X[..., idx[:, None, :, None], idx[None, :, None, :]]

    def forward(self, theta, X):
        """f(theta, X): theta (..., M), X (..., n, *input_shape) -> (..., n). No output bias.
        Leading batch dimensions of theta and X broadcast, so a batch of networks trains as one
        tensor program (llr_train.py) and a single one differentiates with torch.func."""
        return self.forward_features(theta, self.features(X))

    def forward_features(self, theta, Z):
        """`forward` on precomputed `features`."""
        act = torch.tanh
        p = self.unpack(theta)
        k = self.kind
        if k == "fc":
            Wb = torch.cat([p["W"], p["b"][..., None]], -1)
            return (act(Z @ Wb.transpose(-1, -2)) @ p["a"][..., :, None])[..., 0]
        if k == "fc-nobias":
            return (act(Z @ p["W"].transpose(-1, -2)) @ p["a"][..., :, None])[..., 0]
        if k == "deep-fc":
            h = Z
            for l in range(len(self.units)):
                h = act(h @ p[f"W{l + 1}"].transpose(-1, -2))
            return (h @ p["a"][..., :, None])[..., 0]
        if k in ("cnn", "cnn-ns"):
            Kb = torch.cat([p["K"], p["b"][..., None]], -1)
            rule = "...nps,...ms->...nmp" if k == "cnn" else "...nps,...mps->...nmp"
            return (act(torch.einsum(rule, Z, Kb)) * p["A"][..., None, :, :]).flatten(-2).sum(-1)
        rule = "...npqij,...mij->...nmpq" if k == "cnn2d" else "...npqij,...mpqij->...nmpq"
        return (act(torch.einsum(rule, Z, p["K"])) * p["A"][..., None, :, :, :]).flatten(-3).sum(-1)

    def __call__(self, params, X):
        """Evaluate a dict of numpy parameters on numpy inputs, in float64."""
        theta = torch.as_tensor(self.pack(params))
        return self.forward(theta, torch.as_tensor(np.asarray(X, dtype=np.float64))).numpy()


def _with_ones(Z):
    return torch.cat([Z, torch.ones(Z.shape[:-1] + (1,), dtype=Z.dtype, device=Z.device)], -1)


GRAD_KINDS = ("fc", "cnn", "cnn-ns")  # the two-layer families with hidden biases (Figure 3)


def mse_and_grad(arch, theta, Z, Y, W):
    """Weighted training loss L_b = sum_i W_bi (f(x_bi) - y_bi)^2 of B networks and its gradient,
    in closed form as batched matrix products (two-layer tanh with hidden biases, §8).

    With u_ipj = (K_j, b_j) . z_ip (K_j per position p in cnn-ns), H = tanh(u), f_i = sum_pj
    A_jp H_ipj and g_i = 2 W_i (f_i - y_i):  dL/dA_jp = sum_i g_i H_ipj,
    dL/d(K_j, b_j) = sum_ip g_i A_jp (1 - H_ipj^2) z_ip  (summed over p only with sharing).
    fc is the case P = 1. theta (B, M), Z = `features` (B, n, ...), Y and W (B, n); W is 0 on
    padding. Returns L (B,) and dL/dtheta (B, M).
    """
    if arch.kind not in GRAD_KINDS:
        raise ValueError(f"closed-form gradients cover {', '.join(GRAD_KINDS)}, not {arch.kind}")
    p = arch.unpack(theta)
    B, n = Y.shape
    if arch.kind == "fc":
        Kb = torch.cat([p["W"], p["b"][..., None]], -1)                 # (B, m, q)
        H = torch.tanh(Z @ Kb.transpose(1, 2))                           # (B, n, m)
        r = (H @ p["a"][..., None])[..., 0] - Y
        g = 2 * W * r
        grad_a = (g[:, None, :] @ H)[:, 0]
        grad_Kb = ((g[..., None] * p["a"][:, None, :]) * (1 - H * H)).transpose(1, 2) @ Z
        parts = (grad_Kb[..., :-1], grad_Kb[..., -1], grad_a)
    elif arch.kind == "cnn":
        Kb = torch.cat([p["K"], p["b"][..., None]], -1)                 # (B, m, q)
        Zf = Z.reshape(B, -1, Z.shape[-1])                               # (B, n P, q)
        H = torch.tanh(Zf @ Kb.transpose(1, 2)).reshape(B, n, arch.P, -1)  # (B, n, P, m)
        At = p["A"].transpose(1, 2)                                      # (B, P, m)
        r = (H * At[:, None]).sum((2, 3)) - Y
        g = 2 * W * r
        grad_At = (g[:, None, :] @ H.reshape(B, n, -1)).reshape(At.shape)
        G = (g[..., None, None] * At[:, None]) * (1 - H * H)
        grad_Kb = G.reshape(B, Zf.shape[1], -1).transpose(1, 2) @ Zf
        parts = (grad_Kb[..., :-1], grad_Kb[..., -1], grad_At.transpose(1, 2))
    else:
        Kb = torch.cat([p["K"], p["b"][..., None]], -1)                 # (B, m, P, q)
        Zp = Z.transpose(1, 2)                                           # (B, P, n, q)
        H = torch.tanh(Zp @ Kb.permute(0, 2, 3, 1))                      # (B, P, n, m)
        At = p["A"].transpose(1, 2)                                      # (B, P, m)
        r = (H @ At[..., None])[..., 0].sum(1) - Y
        g = 2 * W * r
        grad_At = (g[:, None, None, :] @ H)[:, :, 0]
        G = (g[:, None, :, None] * At[:, :, None, :]) * (1 - H * H)
        grad_Kb = (Zp.transpose(2, 3) @ G).permute(0, 3, 1, 2)          # (B, m, P, q)
        parts = (grad_Kb[..., :-1], grad_Kb[..., -1], grad_At.transpose(1, 2))
    return (W * r * r).sum(1), torch.cat([part.reshape(B, -1) for part in parts], 1)


# --------------------------------------------------------------------------------------------
# Targets

def fig3_function(X):
    """The Figure 3 target of §8: f*(x) = sum_{s=1..3} tanh(0.6 x_s + 0.8 x_{s+1} + x_{s+2})."""
    X = np.asarray(X, dtype=np.float64)
    kernel = np.array(FIG3_KERNEL)
    return sum(np.tanh(X[..., p:p + FIG3_S] @ kernel) for p in range(FIG3_D + 1 - FIG3_S))


def fig3_target(kind):
    """The Figure 3 target as the narrowest network of a family (§8): one kernel (cnn), one
    kernel per position (cnn-ns, 3 positions), or 3 neurons (fc, fc-nobias)."""
    kernel, d, s = np.array(FIG3_KERNEL), FIG3_D, FIG3_S
    P = d + 1 - s
    if kind == "cnn":
        return Arch(kind, d, (1,), s), dict(K=kernel[None], b=np.zeros(1), A=np.ones((1, P)))
    if kind == "cnn-ns":
        return Arch(kind, d, (1,), s), dict(K=np.tile(kernel, (1, P, 1)), b=np.zeros((1, P)),
                                            A=np.ones((1, P)))
    if kind in ("fc", "fc-nobias"):
        W = np.zeros((P, d))
        for p in range(P):
            W[p, p:p + s] = kernel
        params = dict(W=W, a=np.ones(P))
        if kind == "fc":
            params["b"] = np.zeros(P)
        return Arch(kind, d, (P,)), params
    raise ValueError(f"the Figure 3 target is a 1-D convolution; it has no {kind} form "
                     "(use fc, fc-nobias, cnn or cnn-ns)")


def random_target(kind, k, d, s=0, layers=2, rng=None):
    """A generic narrow target with k units (kernels) per hidden layer.

    Input weights N(0, 1/fan_in) keep tanh off saturation; biases N(0, 1/4); output weights of
    random sign and size in [0.5, 1.5], so no unit is nearly silent (a silent unit would sit
    near the zero-output pitfall of §8 and blur the rank).
    """
    rng = np.random.default_rng(rng)
    arch = Arch(kind, d, (k,) * (layers if kind == "deep-fc" else 1), s)
    params = {}
    for name, shape in arch.shapes():
        if name in ("a", "A"):
            params[name] = rng.choice((-1.0, 1.0), shape) * rng.uniform(0.5, 1.5, shape)
        elif name == "b":
            params[name] = 0.5 * rng.standard_normal(shape)
        else:
            fan_in = shape[-1] if kind in ("fc", "fc-nobias", "deep-fc") else s ** (2 if "2d" in kind else 1)
            params[name] = rng.standard_normal(shape) / np.sqrt(fan_in)
    return arch, params


def load_target(path, kind):
    """A narrow target from an .npz of named weights (names as in the module docstring);
    d, s and the widths are read off the shapes."""
    with np.load(path, allow_pickle=False) as f:
        params = {name: f[name].astype(np.float64) for name in f.files}
    try:
        if kind == "deep-fc":
            L = sum(1 for name in params if name.startswith("W"))
            units = tuple(params[f"W{l + 1}"].shape[0] for l in range(L))
            arch = Arch(kind, params["W1"].shape[1], units)
        elif kind in ("fc", "fc-nobias"):
            arch = Arch(kind, params["W"].shape[1], (params["W"].shape[0],))
        else:
            K, A = params["K"], params["A"]
            s, P = K.shape[-1], A.shape[-1]
            arch = Arch(kind, P + s - 1, (K.shape[0],), s)
    except (KeyError, IndexError) as e:
        raise ValueError(f"{path}: not a {kind} target (missing or misshaped {e})") from None
    extra = set(params) - {name for name, _ in arch.shapes()}
    if extra:
        raise ValueError(f"{path}: arrays {sorted(extra)} are not {kind} parameters")
    arch.pack(params)  # raises on a wrong shape
    return arch, params


# --------------------------------------------------------------------------------------------
# Embeddings (§8: "the most condensed point of the wide network")

def widen(arch, N):
    """The same family with every hidden layer N times wider (N is the multiplier of §8)."""
    return Arch(arch.kind, arch.d, tuple(N * m for m in arch.units), arch.s)


def embed(arch, params, N, how="split"):
    """The narrow target inside the N-times-wider network, computing the same function.

    split: every unit copied N times with the same incoming weights and bias, its outgoing
    weights divided by N (splitting embedding). null: the narrow units kept and (N - 1) m
    null units appended with zero incoming weights, zero bias and zero outgoing weights
    (null embedding). Both are condensed points: their tangent functions span the narrow ones.
    """
    if how not in ("split", "null"):
        raise ValueError(f"unknown embedding {how!r}")
    wide = widen(arch, N)
    out = {}
    for name, shape in wide.shapes():
        value = np.asarray(params[name], dtype=np.float64)
        if arch.kind == "deep-fc" and name not in ("W1", "a"):
            if how == "split":  # rows and columns both split: each copy sends 1/N of the weight
                out[name] = np.kron(value, np.ones((N, N))) / N
            else:
                out[name] = np.zeros(shape)
                out[name][:value.shape[0], :value.shape[1]] = value
        elif how == "split":
            out[name] = np.repeat(value, N, axis=0) / (N if name in ("a", "A") else 1)
        else:
            out[name] = np.concatenate([value, np.zeros((shape[0] - value.shape[0],) + shape[1:])])
    return wide, out


def add_units(arch, params, extra):
    """Two-layer families: append hidden units given as a dict of per-unit arrays (leading
    axis = units). For the pitfalls of §8 (a zero-output unit with nonzero input weights,
    a null unit with nonzero bias)."""
    if arch.kind == "deep-fc":
        raise ValueError("add_units is for two-layer families")
    count = np.shape(next(iter(extra.values())))[0]
    wide = Arch(arch.kind, arch.d, (arch.units[0] + count,), arch.s)
    return wide, {name: np.concatenate([params[name], extra[name]]) for name, _ in arch.shapes()}


# --------------------------------------------------------------------------------------------
# Model rank (§8)

def gaussian_inputs(arch, n, rng):
    """n standard Gaussian inputs of the architecture's input shape."""
    return np.random.default_rng(rng).standard_normal((n,) + arch.input_shape)


def tangent_matrix(arch, params, X, chunk=512):
    """Empirical tangent matrix of §8, transposed: row i is grad_theta f(x_i; theta), (n, M),
    in float64. One jacrev per input, vmapped over inputs (cost linear in n)."""
    theta = torch.as_tensor(arch.pack(params))
    X = torch.as_tensor(np.asarray(X, dtype=np.float64))

    def f_single(t, x):
        return arch.forward(t, x[None])[0]

    return vmap(jacrev(f_single), in_dims=(None, 0), chunk_size=chunk)(theta, X).numpy()


def numerical_rank(J, rtol=RTOL):
    """(rank, singular values): values above rtol times the largest count (§8)."""
    sv = np.linalg.svd(J, compute_uv=False)
    if sv.size == 0 or sv[0] == 0:
        return 0, sv
    return int(np.sum(sv > rtol * sv[0])), sv


def default_samples(arch):
    """Inputs for a model rank: twice the parameter count (the rank is at most that), capped
    so the Jacobian stays below about 0.5 GB; `model_rank` says when the cap may bind."""
    return int(min(2 * arch.param_count + 50, 6e7 // max(arch.param_count, 1), 20000))


def model_rank(arch, params, n_samples=None, rng=0, rtol=RTOL):
    """Model rank at the given parameters (§8): rank of the tangent functions, estimated by
    the float64 Jacobian over n_samples Gaussian inputs.

    Returns dict(model_rank, singular_values (relative to the largest), singular_value_gap
    (sigma_r / sigma_{r+1}; None when no value was cut), n_samples, reliable (the rank is
    clearly below n_samples, so more inputs would not raise it), Jr). Jr (n, r) is the tangent
    matrix in a basis of its row space: the same rank for every leading block of rows as the
    full n x M matrix, at a fraction of the size (see `empirical_rank_curve`).
    """
    n = n_samples or default_samples(arch)
    J = tangent_matrix(arch, params, gaussian_inputs(arch, n, rng))
    U, sv, _ = np.linalg.svd(J, full_matrices=False)
    r = int(np.sum(sv > rtol * sv[0])) if sv.size and sv[0] > 0 else 0
    gap = float(sv[r - 1] / sv[r]) if 0 < r < sv.size and sv[r] > 0 else None
    return dict(model_rank=r, singular_values=sv / sv[0] if r else sv, singular_value_gap=gap,
                n_samples=n, reliable=r < 0.75 * n, Jr=U[:, :r] * sv[:r])


def empirical_rank_curve(Jr, ns, rtol=RTOL):
    """Empirical model rank of the first n samples (rank of the n x M tangent matrix of §8) for
    each n in ns, from the projected matrix Jr of `model_rank`."""
    return [numerical_rank(Jr[:n], rtol)[0] if Jr.shape[1] else 0 for n in ns]


def curve_sizes(rank, n_samples, max_points=60):
    """Sample counts at which to report the empirical rank: every n up to rank + 3 when that
    is short, else a log-spaced grid that contains rank - 1, rank and rank + 1."""
    top = min(rank + 3, n_samples)
    if top <= max_points:
        return list(range(1, top + 1))
    grid = np.unique(np.geomspace(1, top, max_points - 3).round().astype(int))
    return sorted(set(grid.tolist()) | {n for n in (rank - 1, rank, rank + 1) if 1 <= n <= n_samples})


def optimistic_size(ns, ranks, rank):
    """Smallest n whose empirical model rank reaches the model rank (§8), or None."""
    return next((n for n, e in zip(ns, ranks) if e >= rank), None)


# --------------------------------------------------------------------------------------------
# Closed forms (§8)

def closed_form(arch):
    """Model rank of a generic narrow target by the formulas of §8 (k = units), with the kind
    of statement: 'exact' or 'upper bound' (deep fully connected)."""
    k, d, s, P = arch.units[0], arch.d, arch.s, arch.P
    kind = arch.kind
    if kind == "fc":
        return k * (d + 2), "exact"
    if kind == "fc-nobias":
        return k * (d + 1), "exact"
    if kind == "cnn":
        return k * (s + 1 + P), "exact"
    if kind == "cnn-ns":
        return k * (s + 2) * P, "exact"
    if kind == "cnn2d":
        return k * (s * s + P * P), "exact"
    if kind == "cnn2d-ns":
        return k * (s * s + 1) * P * P, "exact"
    widths = (d,) + tuple(arch.units)
    return sum(a * b for a, b in zip(widths[:-1], widths[1:])) + widths[-1], "upper bound"


def closed_form_table(d, s, k):
    """Rows (family, formula, model rank, parameters of the narrowest network) of §8 for a
    target of k kernels of size s on inputs of size d (1-D) and d x d (2-D)."""
    P = d + 1 - s
    return [
        ("1-D CNN", "k(s+1+(d+1-s)) = k(d+2)", k * (d + 2), k * (s + 1 + P)),
        ("1-D CNN, no weight sharing", "k(s+2)(d+1-s)", k * (s + 2) * P, k * (s + 2) * P),
        ("1-D fully connected", "k(d+2)(d+1-s)", k * (d + 2) * P, k * (d + 2) * P),
        ("2-D CNN (no biases)", "k(s^2+(d+1-s)^2)", k * (s * s + P * P), k * (s * s + P * P)),
        ("2-D CNN, no weight sharing", "k(s^2+1)(d+1-s)^2", k * (s * s + 1) * P * P, k * (s * s + 1) * P * P),
        ("2-D fully connected", "k(d^2+1)(d+1-s)^2", k * (d * d + 1) * P * P, k * (d * d + 1) * P * P),
    ]
