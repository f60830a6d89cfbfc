"""plot_phase.py: the fit CSV and the PNG are written together or not at all, the paper style,
and the hatching of cells whose minimal-norm optimum is not unique; a ratio grid's heatmap,
curves, finite-size outputs and Wendel's prediction."""
import errno
import json
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle

import plot_phase
import utils
from planted import results


def fake_sweep(folder, prog, metrics, cell):
    parser = utils.experiment_parser("test")
    parser.prog = prog
    return utils.run(parser, cell, metrics, argv=["--n", "40", "--d", "20", "--sample", "3", "--jobs", "1",
                                                  "--save_folder", str(folder)])


@pytest.fixture
def rate(tmp_path):
    """A recovery rate that rises with n (50% near n = 2d), from the harness itself."""
    return fake_sweep(tmp_path, "fake_rec.py", ["rec"],
                      lambda args, n, d, rng: dict(rec=float(rng.random() < n / (4 * d))))


@pytest.fixture
def distance(tmp_path):
    """A minimal-norm-like sweep: distances and a `unique` metric, ties wherever n <= d."""
    return fake_sweep(tmp_path, "fake_minnrm.py", ["dis_abs", "dis_test", "unique"],
                      lambda args, n, d, rng: dict(dis_abs=d / n, dis_test=2 * d / n, unique=float(n > d)))


def test_fit_writes_the_csv_and_the_png(rate, tmp_path, capsys):
    out = tmp_path / "fig.png"
    plot_phase.main([str(rate), "--fit", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "fig_fit.csv").read_text().startswith("result,d,n50")
    assert capsys.readouterr().out.split() == [str(tmp_path / "fig_fit.csv"), str(out)]


def test_a_png_that_cannot_be_written_leaves_no_csv(rate, tmp_path, capsys, monkeypatch):
    def full(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    before = set(tmp_path.iterdir())
    with pytest.raises(SystemExit) as e:
        plot_phase.main([str(rate), "--fit", "--out", str(tmp_path / "fig.png")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left" in err and "Traceback" not in err
    assert set(tmp_path.iterdir()) == before  # no fig_fit.csv, no fig.png, no temporary file


def test_ties_are_hatched(distance):
    """One hatched rectangle per cell with a non-unique trial (n <= d: 3 cells of the 4 x 2 grid)."""
    values, meta = results.read(distance)
    tied = plot_phase.ties(distance, meta)
    nvec, dvec = np.array(meta["nvec"]), np.array(meta["dvec"])
    assert np.array_equal(tied, nvec[:, None] <= dvec[None, :]) and tied.sum() == 3
    for style in ("default", "paper"):
        fig, ax = plt.subplots()
        ns = type("Args", (), dict(style=style, log=False, boundary=False, theory=False, fit=False))()
        plot_phase.panel(ax, values.astype(float), meta, ns, distance)
        hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
        assert len(hatched) == 3, style
        assert "not unique" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
        plt.close(fig)


def test_paper_style_uses_the_linear_0_1_levels(distance, rate, tmp_path):
    """Filled contours at 0, 0.1, ..., 1 for distances and rates alike; values above 1 clipped
    into the top level (the distance here reaches d / n = 2)."""
    for path in (distance, rate):
        values, meta = results.read(path)
        fig, ax = plt.subplots()
        ns = type("Args", (), dict(style="paper", log=True, boundary=False, theory=False, fit=False))()
        plot_phase.panel(ax, values.astype(float), meta, ns, path)
        levels = next(c.levels for c in ax.collections if hasattr(c, "levels"))
        assert np.allclose(levels, np.linspace(0, 1, 11))
        plt.close(fig)


@pytest.fixture
def ratio_grid(tmp_path, capsys):
    """rec_rate_skip on a tiny ratio grid (rec and all_ones)."""
    from cli_helpers import run_script
    return Path(run_script(capsys, "rec_rate_skip.py", "--dims", "5,10", "--ratios", "1.5:2.5:0.25", "--sample", "2",
                           "--save_folder", str(tmp_path)))


def test_ratio_grid_heatmap_and_fit(ratio_grid, tmp_path, capsys):
    """Without --fit a heatmap, n/d across and a row per d; with --fit the curves, FIG_fit.csv,
    and the finite-size table and figure, all written together."""
    meta = json.loads(ratio_grid.with_suffix(".json").read_text())
    all_ones = ratio_grid.parent / meta["files"]["all_ones"]
    for style in ("default", "paper"):
        out = tmp_path / f"heat_{style}.png"
        plot_phase.main([str(ratio_grid), "--theory", "--style", style, "--out", str(out)])
        assert out.read_bytes()[:4] == b"\x89PNG" and capsys.readouterr().out.split() == [str(out)]
    out = tmp_path / "fig.png"
    plot_phase.main([str(ratio_grid), str(all_ones), "--fit", "--theory", "--out", str(out)])
    written = [tmp_path / f"fig_{s}" for s in ("fit.csv", "finite.csv", "finite.png")] + [out]
    assert capsys.readouterr().out.split() == [str(p) for p in written]
    assert out.read_bytes()[:4] == b"\x89PNG" and written[2].read_bytes()[:4] == b"\x89PNG"
    from planted import transition
    fits = transition.read_csv(written[0])
    assert [r["d"] for r in fits] == [5, 10, 5, 10]
    finite = transition.read_csv(written[1], columns=transition.FINITE_COLUMNS)
    assert [r["d"] for r in finite] == [5, 10, 5, 10]
    assert finite[0]["wendel_width"] == pytest.approx(transition.wendel_width(5), rel=1e-5)
    assert {r["result"] for r in finite} == {ratio_grid.name, all_ones.name}


def test_wendel_prediction_beside_the_measured_curve(ratio_grid):
    """The relaxed skip program's rate against n/d, with 1 - Wendel's P(all-ones present)
    dashed at every integer n of each d."""
    from planted import patterns
    values, meta = results.read(ratio_grid)
    ns = type("Args", (), dict(theory=False, fit_from=0.0))()
    fig, ax = plt.subplots()
    finite = plot_phase.finite_analysis(values.astype(float), meta)
    assert finite.wendel == "absent"
    plot_phase.curves(ax, values.astype(float), meta, ns, finite)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(dashed) == 2  # one per d
    x, y = dashed[0].get_data()  # d = 5: n = 8 ... 13
    assert np.allclose(x * 5, np.arange(8, 14))
    assert np.allclose(y, [1 - patterns.wendel_probability(n, 5) for n in range(8, 14)])
    assert "Wendel: P(all-ones pattern absent)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_wendel_applies_where_the_all_ones_pattern_decides():
    meta = dict(experiment="rec_rate_skip", metric="rec", flags=dict(optx=0, optw=0, form="relaxed", sigma=0.0))
    assert plot_phase.wendel_kind(meta) == "absent"
    assert plot_phase.wendel_kind(dict(meta, metric="all_ones")) == "present"
    assert plot_phase.wendel_kind(dict(meta, flags=dict(meta["flags"], optx=6))) == "absent"  # Student-t
    # Rademacher and sparse rows are not in general position, mean-shifted ones not sign-symmetric
    for flags in (dict(form="exact"), dict(optw=1), dict(sigma=0.1), dict(optx=4), dict(optx=5), dict(optx=8)):
        assert plot_phase.wendel_kind(dict(meta, flags=dict(meta["flags"], **flags))) is None, flags
    assert plot_phase.wendel_kind(dict(meta, experiment="nic")) is None
