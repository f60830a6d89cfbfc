"""Every script against a table of bad values: exit status 2, one line on stderr, no traceback
and no file written anywhere (the scripts run in this process, in an empty folder)."""
import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import usage_error

SWEEPS = ["rec_rate_skip.py", "rec_rate_plain.py", "rec_rate_norm.py", "minnrm_skip.py", "minnrm_plain.py",
          "minnrm_norm.py", "cvx_train_skip.py", "cvx_train_plain.py", "cvx_train_norm.py",
          "ncvx_train_skip.py", "ncvx_train_plain.py", "ncvx_train_norm.py", "nic.py"]
TRAINING = ["ncvx_train_skip.py", "ncvx_train_plain.py", "ncvx_train_norm.py"]
EVERY_SWEEP = [
    ["--seed", "-1"], ["--seed", "1.5"], ["--sigma", "-inf"], ["--sigma", "nan"], ["--save_folder", ""],
    ["--optx", "9"], ["--scheduler", ""], ["--scheduler", "localhost"],
    ["--n", "1000000", "--d", "1000000", "--step", "1000000"],  # one cell of 7 TiB
    ["--n", "100000000", "--d", "1000000", "--step", "1"],      # 1e14 cells to list
]
RATIO_GRID = [  # --dims and --ratios: a pair, instead of --n/--d/--step, n = round(ratio d) >= 1
    ["--dims", "5,10"], ["--ratios", "1.5:2.5:0.5"], ["--dims", "5", "--ratios", "2", "--n", "40"],
    ["--dims", "5", "--ratios", "2", "--step", "5"],
]
BAD_RATIOS = [
    ["--dims", "0,5", "--ratios", "2"], ["--dims", "5.5", "--ratios", "2"], ["--dims", "-5", "--ratios", "2"],
    ["--dims", "", "--ratios", "2"], ["--dims", "5", "--ratios", "0"], ["--dims", "5", "--ratios", "-1:2:0.5"],
    ["--dims", "5", "--ratios", "2:1:0.5"], ["--dims", "5", "--ratios", "1:2:0"], ["--dims", "5", "--ratios", "nan"],
    ["--dims", "5", "--ratios", "1:inf:1"], ["--dims", "5", "--ratios", "a,b"], ["--dims", "5", "--ratios", "1:2"],
    ["--dims", "5", "--ratios", "0.05"],                                  # n = round(0.25) = 0
    ["--dims", "5", "--ratios", "1:1e9:1e-9"],                            # a list of 1e18 values
    ["--dims", "1:90000:1", "--ratios", "1:10:0.001"],                    # 4e9 cells
    ["--dims", "1000000", "--ratios", "1000"],                            # one cell of an exabyte
    ["--dims", "1e30", "--ratios", "2"],
]
CASES = ([(s, f) for s in SWEEPS for f in EVERY_SWEEP + RATIO_GRID]
         + [("rec_rate_skip.py", f) for f in BAD_RATIOS]
         + [(s, f) for s in TRAINING for f in (["--device", "meta"], ["--device", "cuda:x"], ["--beta", "-inf"])]
         + [("cvx_train_skip.py", ["--beta", "-inf"]), ("rec_rate_skip.py", ["--scheduler", "tls://127.0.0.1:1"])]
         + [("model_rank.py", f) for f in (["--arch", "fc", "--target", "random", "--seed", "-1"],
                                            ["--arch", "fc", "--target", "random", "--width", "1000000000"],
                                            ["--arch", "fc", "--target", "random", "--samples", "100000000"])]
         + [("llr_train.py", ["--seed", "-1"])])


@pytest.mark.parametrize("script,flags", CASES, ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_bad_value(script, flags, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep = script in SWEEPS and "--save_folder" not in flags
    err = usage_error(capsys, script, *flags, *(["--save_folder", "out"] if sweep else []),
                      serial=script != "model_rank.py")
    assert "Traceback" not in err and "error" in err
    assert list(tmp_path.iterdir()) == []


def malformed(folder, good):
    """Broken result files beside a good one (`good`: path of a .npy with its sidecar)."""
    meta = json.loads(good.with_suffix(".json").read_text())
    values = np.load(good)

    def write(name, array=values, sidecar=meta):
        path = folder / f"{name}.npy"
        np.save(path, array) if array is not None else path.write_bytes(b"")
        if sidecar is not None:
            path.with_suffix(".json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
        return path

    without = lambda key: {k: v for k, v in meta.items() if k != key}  # noqa: E731
    files = dict(empty=write("empty", None), no_metric=write("no_metric", sidecar=without("metric")),
                 no_flags=write("no_flags", sidecar=without("flags")), nvec=write("nvec", sidecar=dict(meta, nvec=4)),
                 list_sidecar=write("list", sidecar="[1, 2]"), bad_json=write("badjson", sidecar="{bad"),
                 no_sidecar=write("nosidecar", sidecar=None), complex=write("complex", values.astype(complex)),
                 wrong_shape=write("shape", values[:, :, :0]))
    npz = folder / "archive.npz"
    np.savez(npz, a=values)
    npz.with_suffix(".json").write_text(json.dumps(meta))
    text = folder / "text.npy"
    text.write_text("hello")
    text.with_suffix(".json").write_text(json.dumps(meta))
    return dict(files, npz=npz, text=text)


def test_plots_reject_malformed_results(tmp_path, monkeypatch, capsys):
    from cli_helpers import run_script
    data = tmp_path / "data"
    good = run_script(capsys, "rec_rate_skip.py", "--n", "20", "--d", "10", "--step", "10", "--sample", "1",
                      "--save_folder", str(data))
    llr = run_script(capsys, "llr_train.py", "--families", "cnn", "--widths", "1", "--sizes", "3", "--sample", "1",
                     "--steps", "20", "--save_folder", str(data))
    files = malformed(data, Path(good))
    before = sorted(data.iterdir())
    out = tmp_path / "fig.png"
    for name, path in files.items():
        for script in ("plot_phase.py", "plot_llr.py"):
            err = usage_error(capsys, script, str(path), "--out", str(out), serial=False)
            assert path.name in err or path.with_suffix(".json").name in err, (name, err)
    # an LLR result is not a heatmap of (n, d), and the reverse: say which axes each has
    assert "(n, d, trial)" in usage_error(capsys, "plot_phase.py", llr, "--out", str(out), serial=False)
    assert "(family, width, size, trial)" in usage_error(capsys, "plot_llr.py", good, "--out", str(out), serial=False)
    assert sorted(data.iterdir()) == before and not out.exists()


@pytest.fixture
def targets(tmp_path):
    W, a, b = np.ones((1, 5)), np.ones(1), np.zeros(1)
    paths = {}
    for name, weights in dict(nan=dict(W=W * np.nan, a=a, b=b), inf=dict(W=W * np.inf, a=a, b=b),
                              complex=dict(W=W * 1j, a=a, b=b), empty={}).items():
        paths[name] = tmp_path / f"{name}.npz"
        np.savez(paths[name], **weights)
    np.savez(tmp_path / "good.npz", W=W, a=a, b=b)
    whole = (tmp_path / "good.npz").read_bytes()
    for name, content in dict(truncated=whole[:len(whole) // 2], zero_bytes=b"", text=b"hello").items():
        paths[name] = tmp_path / f"{name}.npz"
        paths[name].write_bytes(content)
    paths["npy"] = tmp_path / "array.npy"
    np.save(paths["npy"], W)
    return paths


@pytest.mark.parametrize("name", ["nan", "inf", "complex", "empty", "truncated", "zero_bytes", "text", "npy"])
def test_model_rank_rejects_bad_target_files(targets, name, capsys):
    err = usage_error(capsys, "model_rank.py", "--arch", "fc", "--target", str(targets[name]), serial=False)
    assert targets[name].name in err and "pickle" not in err


def test_model_rank_explains_a_zero_target(tmp_path, capsys):
    import model_rank
    np.savez(tmp_path / "zero.npz", W=np.zeros((1, 5)), a=np.zeros(1), b=np.zeros(1))
    assert model_rank.main(["--arch", "fc", "--target", str(tmp_path / "zero.npz")])["model_rank"] == 0
    assert "zero network" in capsys.readouterr().err


def test_plots_reject_malformed_ratio_grid_results(tmp_path, capsys):
    from cli_helpers import run_script
    good = Path(run_script(capsys, "rec_rate_skip.py", "--dims", "5", "--ratios", "2,3", "--sample", "1",
                           "--save_folder", str(tmp_path)))
    meta = json.loads(good.with_suffix(".json").read_text())
    for name, change in dict(n_shape=dict(n=[[10]]), n_zero=dict(n=[[0], [15]]), ratios=dict(ratios=[-2, 3]),
                             ratios_text=dict(ratios="2,3"), too_few=dict(ratios=[2.0])).items():
        path = tmp_path / f"{name}.npy"
        path.write_bytes(good.read_bytes())
        path.with_suffix(".json").write_text(json.dumps(dict(meta, **change)))
        err = usage_error(capsys, "plot_phase.py", str(path), "--out", str(tmp_path / "fig.png"), serial=False)
        assert path.with_suffix(".json").name in err or path.name in err, (name, err)
    assert not (tmp_path / "fig.png").exists()
