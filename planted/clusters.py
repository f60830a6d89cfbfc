"""The two-cluster probability experiment of [NI] (docs/reference.md §10).

n/2 rows x = mu_1 + z and n/2 rows x = mu_2 + z, z ~ N(0, I_d / sigma^2) (sigma is an inverse
noise level). The event: u = mu_1/||mu_1|| - mu_2/||mu_2|| has every row of the first cluster on
its positive side and every row of the second on its negative side, i.e. its ReLU pattern D_u
splits the clusters.

Given the means, u.x is Gaussian with mean ||mu_1||(1 - c) (first cluster; -||mu_2||(1 - c) for
the second) and standard deviation ||u|| / sigma = sqrt(2 - 2c) / sigma, c the cosine between the
means, and the rows are independent, so (`given_means`)

    P(split | mu) = Phi(sigma ||mu_1|| sqrt((1 - c) / 2))^(n/2) * Phi(sigma ||mu_2|| sqrt((1 - c) / 2))^(n/2).
"""
import numpy as np
from scipy.special import log_ndtr

MEANS = {"unit": "unit Gaussian directions", "sign": "+-1 vectors", "raw": "Gaussian vectors, not normalized"}
CHUNK = 2**22  # floats of noise per batch of draws: the memory of one batch stays near 32 MB


def draw_means(d, kind, draws, rng):
    """mu_1, mu_2 of `draws` independent draws, each (draws, d)."""
    mu = rng.standard_normal((2, draws, d))
    if kind == "sign":
        mu = np.sign(mu)
    elif kind == "unit":
        mu /= np.linalg.norm(mu, axis=2, keepdims=True)
    elif kind != "raw":
        raise ValueError(f"means {kind!r}: expected one of {', '.join(MEANS)}")
    return mu[0], mu[1]


def direction(mu1, mu2):
    """u = mu_1/||mu_1|| - mu_2/||mu_2|| per draw."""
    return mu1 / np.linalg.norm(mu1, axis=1, keepdims=True) - mu2 / np.linalg.norm(mu2, axis=1, keepdims=True)


def given_means(n, mu1, mu2, sigmas):
    """P(split | mu) of the module docstring, (draws, len(sigmas))."""
    r1, r2 = np.linalg.norm(mu1, axis=1), np.linalg.norm(mu2, axis=1)
    c = np.einsum("bd,bd->b", mu1, mu2) / (r1 * r2)
    half = np.sqrt(np.clip(1 - c, 0, None) / 2)[:, None] * np.asarray(sigmas, float)[None, :]
    first, second = n // 2, n - n // 2
    return np.exp(first * log_ndtr(r1[:, None] * half) + second * log_ndtr(r2[:, None] * half))


def split_probability(n, d, sigmas, draws, kind, rng):
    """Monte Carlo over `draws` draws of means and data: (the fraction of draws where u splits
    the clusters, the mean of P(split | mu) over the same means), one value per sigma each.

    Vectorized over draws (in batches of CHUNK noise entries) and over sigma: the same standard
    noise, scaled by 1/sigma, serves every sigma, so the curve of one d is smooth in sigma."""
    sigmas = np.asarray(sigmas, float)
    sign = np.r_[np.ones(n // 2), -np.ones(n - n // 2)]  # which side each row must be on
    hits, exact = np.zeros(len(sigmas)), np.zeros(len(sigmas))
    batch = max(1, CHUNK // (n * d))
    for start in range(0, draws, batch):
        b = min(batch, draws - start)
        mu1, mu2 = draw_means(d, kind, b, rng)
        u = direction(mu1, mu2)
        centre = np.where(sign > 0, np.einsum("bd,bd->b", u, mu1)[:, None], np.einsum("bd,bd->b", u, mu2)[:, None])
        noise = np.einsum("bnd,bd->bn", rng.standard_normal((b, n, d)), u)
        # signed margin of every row at every sigma: (b, n, sigmas)
        margin = sign[None, :, None] * (centre[:, :, None] + noise[:, :, None] / sigmas[None, None, :])
        hits += (margin > 0).all(axis=1).sum(axis=0)
        exact += given_means(n, mu1, mu2, sigmas).sum(axis=0)
    return hits / draws, exact / draws
