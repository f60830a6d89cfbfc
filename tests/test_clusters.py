"""The two-cluster experiment (planted.clusters, two_clusters.py) against its closed form."""
import json

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr

import two_clusters
from planted import clusters


def by_integration(n, d, sigma):
    """P(split) for unit Gaussian means, integrating P(split | c) = Phi(sigma sqrt((1 - c)/2))^n
    over the density of the cosine c of two random directions, proportional to (1 - c^2)^((d-3)/2)."""
    density = lambda c: (1 - c * c) ** ((d - 3) / 2)  # noqa: E731
    norm = integrate.quad(density, -1, 1)[0]
    return integrate.quad(lambda c: density(c) * ndtr(sigma * np.sqrt((1 - c) / 2)) ** n, -1, 1)[0] / norm


def test_monte_carlo_matches_the_closed_form():
    """20000 draws at n = 100, d = 20: the fraction of splitting draws within 4 binomial standard
    deviations of the integral, the mean of P(split | mu) within a quarter of that."""
    n, d, sigmas, draws = 100, 20, [2.5, 3.5, 4.5], 20000
    hits, given = clusters.split_probability(n, d, sigmas, draws, "unit", np.random.default_rng(0))
    for s, h, g in zip(sigmas, hits, given):
        p = by_integration(n, d, s)
        sd = np.sqrt(p * (1 - p) / draws)
        assert 0.02 < p < 0.98  # a case where the test can fail
        assert abs(h - p) < 4 * sd, (s, h, p)
        assert abs(g - p) < sd, (s, g, p)


@pytest.mark.parametrize("kind", sorted(clusters.MEANS))
def test_the_limits_in_sigma(kind):
    """sigma large: the noise vanishes and u always splits the clusters; sigma small: each row is
    on either side with probability 1/2, so a split is (1/2)^n, never seen. (d = 30: +-1 means
    coincide, u = 0, with probability 2^-30; at d = 10 that happens in 1 draw of 1000.)"""
    hits, given = clusters.split_probability(40, 30, [1e-3, 1e3], 2000, kind, np.random.default_rng(1))
    assert hits[0] == 0 and given[0] < 1e-10
    assert hits[1] == 1 and given[1] > 0.999


def test_the_script_writes_the_curves_and_the_plot(tmp_path, capsys):
    main = two_clusters.main(["--n", "20", "--d", "5,10", "--sigma", "1:3:1", "--draws", "50",
                              "--save_folder", str(tmp_path)])
    prob = np.load(main)
    meta = json.loads(main.with_suffix(".json").read_text())
    assert prob.shape == (2, 3) and meta["dvec"] == [5, 10] and meta["sigmas"] == [1.0, 2.0, 3.0]
    assert main.name == "two_clusters_n20_draws50_d5-10_sigma1-3-1.npy"
    assert main.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    again = two_clusters.main(["--n", "20", "--d", "10", "--sigma", "1:3:1", "--draws", "50",
                               "--save_folder", str(tmp_path / "b")])
    assert np.array_equal(np.load(again)[0], prob[1])  # a curve depends on its own d only


@pytest.mark.parametrize("flags,word", [(["--n", "99"], "even"), (["--d", "0"], "positive"),
                                        (["--d", "2.5"], "whole"), (["--sigma", "abc"], "--sigma"),
                                        (["--sigma", "3:1:1"], "--sigma"), (["--means", "x"], "--means"),
                                        (["--draws", "-1"], "--draws")])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, flags, word):
    with pytest.raises(SystemExit) as e:
        two_clusters.main([*flags, "--save_folder", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and word in err, err
    assert not list(tmp_path.iterdir())
