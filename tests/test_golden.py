"""The results do not change: small sweeps of every convex script against stored arrays.

tests/golden/commands.txt lists the sweeps (relaxed, exact and training forms of the skip,
plain and normalization programs, every isometry condition with --compare, one CVXPY run);
tests/golden/expected.npz holds their arrays, key "line:metric". 0/1 metrics must agree
exactly, the others (distances, condition values) to 1e-4: an interior-point answer is exact
only to its stopping tolerance, and its last digits follow the CPU's floating-point kernels,
so two machines agree on a distance to about 1e-6, not bitwise; a change of protocol or
program moves them by far more. After a change meant to change results, regenerate them
with `python tests/test_golden.py --update` and say why in the commit.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_script

HERE = Path(__file__).resolve().parent / "golden"
COMMANDS = [line.split() for line in (HERE / "commands.txt").read_text().splitlines() if line.strip()]
BINARY = ("rec", "all_ones", "holds", "gap", "unique")
TOL = 1e-4  # see the docstring: solver accuracy, not a bitwise match across CPUs


def sweep(capsys, folder, words):
    """Run one command of the list; {metric: array} of its result files."""
    main = Path(run_script(capsys, words[0], *words[1:], "--save_folder", str(folder)))
    meta = json.loads(main.with_suffix(".json").read_text())
    return {m: np.load(main.parent / name) for m, name in meta["files"].items()}


@pytest.fixture(scope="module")
def expected():
    with np.load(HERE / "expected.npz") as stored:
        return dict(stored)


@pytest.mark.parametrize("line", range(len(COMMANDS)), ids=[" ".join(c[:1] + c[9:]) for c in COMMANDS])
def test_same_arrays_as_stored(capsys, tmp_path, expected, line):
    got = sweep(capsys, tmp_path, COMMANDS[line])
    keys = sorted(k.split(":")[1] for k in expected if k.split(":")[0] == str(line))
    assert sorted(got) == keys
    for metric, values in got.items():
        want = expected[f"{line}:{metric}"]
        assert values.shape == want.shape, metric
        assert np.array_equal(np.isnan(values), np.isnan(want)), metric
        ok = ~np.isnan(want)
        if metric in BINARY:
            assert np.array_equal(values[ok], want[ok]), metric
        else:
            assert np.abs(values[ok] - want[ok]).max(initial=0) <= TOL, metric


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import tempfile

    class _Out:  # what run_script needs of pytest's capsys: the lines printed
        def readouterr(self):
            return type("Captured", (), {"out": sys.stdout.getvalue()})()

    import io
    arrays = {}
    real = sys.stdout
    for i, words in enumerate(COMMANDS):
        with tempfile.TemporaryDirectory() as tmp:
            sys.stdout = io.StringIO()
            try:
                got = sweep(_Out(), tmp, words)
            finally:
                sys.stdout = real
        arrays.update({f"{i}:{m}": v for m, v in got.items()})
        print(" ".join(words))
    np.savez_compressed(HERE / "expected.npz", **arrays)
