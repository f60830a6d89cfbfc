"""Run a script's __main__ in this process: imports are shared, so a tiny sweep costs little."""
import runpy
import sys

from conftest import ROOT

SERIAL = ["--jobs", "1"]  # in-process: a process pool costs seconds to start


def run_script(capsys, script, *flags, serial=True):
    """Run `script` with `flags` (and --jobs 1 unless serial is False: the scripts without a
    process pool have no --jobs); returns the last line it printed (the main result file)."""
    argv = sys.argv
    sys.argv = [str(ROOT / script), *flags, *(SERIAL if serial else [])]
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    finally:
        sys.argv = argv
    return capsys.readouterr().out.strip().splitlines()[-1]


def usage_error(capsys, script, *flags, serial=True):
    """The one-line stderr message of a rejected command line (exit status 2)."""
    import pytest
    with pytest.raises(SystemExit) as e:
        run_script(capsys, script, *flags, serial=serial)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unrecognized arguments" not in err, err
    return err
