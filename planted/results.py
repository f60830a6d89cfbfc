"""Result files: names, atomic writes, JSON sidecars, the cell store, and loading them back.

A result is one array per metric (.npy) beside a JSON sidecar (.json) with the grids, the
flags, per-cell statuses and times, and the package versions. The sweeps' arrays have axes
(n, d, trial), or (ratio, d, trial) on a ratio grid, whose sidecar holds the n of every
(ratio, d) as `n` (a loss curve adds an epoch axis); llr_train.py's have (family, width, size,
trial). `load` returns any of them as a labelled xarray.DataArray, for notebooks:

    from planted import results
    rec = results.load("results/rec_rate_skip_n400_d100_w0_X0_sample5.npy")
    rec.mean("trial").plot()
"""
import fcntl
import json
import os
import platform
import sqlite3
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = ("numpy", "scipy", "cvxpy", "clarabel", "scs", "mosek", "torch", "joblib", "distributed")
SWEEP_AXES = ("n", "d", "trial")
RATIO_AXES = ("ratio", "d", "trial")  # a ratio grid: rows n/d, n = round(ratio d) in the sidecar's `n`
LLR_AXES = ("family", "width", "size", "trial")


class ResultError(ValueError):
    """A result file or its sidecar is missing, unreadable or inconsistent."""


def file_names(script, tail, metrics):
    """The file of each metric: the first (main) one under the bare scheme name
    (rec_rate_skip_n400_..._sample5.npy), the others with their name inserted
    (minnrm_skip_dis_test_n400_...)."""
    return {m: f"{script}_{tail}.npy" if k == 0 else f"{script}_{m}_{tail}.npy"
            for k, m in enumerate(metrics)}


def versions():
    """Python, platform and the versions of the packages a result may depend on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def atomic_save(path, write):
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-", suffix=path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file is as readable as any other
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(folder, files, arrays, meta):
    """Each metric's array and its sidecar (meta plus the metric's name), atomically."""
    folder = Path(folder)
    for m, name in files.items():
        array = arrays[m]
        atomic_save(folder / name, lambda tmp: np.save(tmp, array))
        sidecar = json.dumps(dict(meta, metric=m), indent=1)
        atomic_save((folder / name).with_suffix(".json"), lambda tmp: Path(tmp).write_text(sidecar))


def check_folder(folder):
    """None if result files can be written into `folder` (made if missing), else why not."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        return f"cannot write to --save_folder {folder}: {e.strerror or e}"
    return None


class StoreError(RuntimeError):
    """A cell store that cannot be used as it is: made with other flags, damaged, or in use."""


SCHEMA = "planted-cells-2"  # rows: (n, d, trial, run, status, seconds, JSON of the metric values)


def encode(out):
    """A cell's metric values as JSON: numbers, or nested lists for a curve; NaN kept."""
    return json.dumps({m: np.asarray(v, float).tolist() for m, v in out.items()})


def decode(text):
    return {m: np.asarray(v, float) if isinstance(v, list) else float(v) for m, v in json.loads(text).items()}


class CellStore:
    """Finished cells in SQLite, one committed row each: a crash loses at most the cells in flight.

    The file is named after the result, so only a run with the same result-changing flags
    finds it; the flags are stored too, and a store made with other flags is refused, never
    emptied (only `fresh` starts it over). Rows hold plain JSON, so opening someone else's
    store runs no code. One run at a time holds a store (an advisory lock that the kernel
    releases when the process ends, however it ends): a second identical command is told the
    first is running instead of repeating its work. Each opening is numbered (`run`), so the
    rows tell which run computed which cell.
    """

    def __init__(self, path, fingerprint, fresh):
        self.path = Path(path)
        self.db = None
        self.lock = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock)
            raise StoreError(f"{self.path} is in use by another run of the same command; "
                             "wait for it to finish (its cells will be there)") from None
        try:
            if fresh:  # truncated in place, not unlinked: the lock is on this file
                os.ftruncate(self.lock, 0)
                for suffix in ("-wal", "-shm"):
                    Path(str(self.path) + suffix).unlink(missing_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")  # each commit survives a kill -9 of this process
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            if meta and meta.get("schema") != SCHEMA:
                raise StoreError(f"{self.path} is not a cell store of this version"
                                 f" ({meta.get('schema', 'no schema')}); use --fresh to start it over")
            if meta and meta.get("flags") != fingerprint:
                raise StoreError(f"{self.path} holds cells of other flags ({differences(meta['flags'], fingerprint)});"
                                 " use --fresh to start it over, or another --save_folder")
            self.db.execute("CREATE TABLE IF NOT EXISTS cells (n INT, d INT, trial INT, run INT, status TEXT,"
                            " seconds REAL, out TEXT, PRIMARY KEY (n, d, trial))")
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [("schema", SCHEMA), ("flags", fingerprint)])
            row = self.db.execute("SELECT MAX(run) FROM cells").fetchone()
            self.run = (row[0] or 0) + 1
            self.db.commit()
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(f"{self.path} is damaged or not a cell store ({e});"
                             " use --fresh to start it over") from None
        except BaseException:
            self.close()
            raise

    def done(self):
        """{(n, d, trial): (metric values, status, seconds)} of every finished cell."""
        try:
            rows = self.db.execute("SELECT n, d, trial, status, seconds, out FROM cells").fetchall()
            return {(n, d, t): (decode(out), status, seconds) for n, d, t, status, seconds, out in rows}
        except (sqlite3.DatabaseError, ValueError, TypeError) as e:
            raise StoreError(f"{self.path} is damaged ({e}); use --fresh to start it over") from None

    def put(self, key, out, status, seconds):
        self.db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*(int(k) for k in key), self.run, status, seconds, encode(out)))
        self.db.commit()

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.lock is not None:  # after SQLite's own locks are gone (closing an fd drops them)
            os.close(self.lock)
            self.lock = None


def differences(old, new):
    """The flags two fingerprints (JSON objects) disagree on, as 'flag: old -> new'."""
    old, new = json.loads(old), json.loads(new)
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def axes(meta, shape):
    """Names and coordinates of a result's axes, e.g. ('n', 'd', 'trial'), from its sidecar and
    the array's shape."""
    if "families" in meta:
        coords = [meta["families"], meta["widths"], meta["sizes"], list(range(meta["flags"]["sample"]))]
        names = LLR_AXES
    else:
        ratio = "ratios" in meta
        coords = [meta["ratios" if ratio else "nvec"], meta["dvec"], list(range(meta["flags"]["sample"]))]
        names = RATIO_AXES if ratio else SWEEP_AXES
        if len(shape) == 4:
            names, coords = names + ("epoch",), coords + [list(range(shape[3]))]
    return names, coords


def _ints(meta, key):
    """The sidecar's entry `key` as a nonempty list of positive ints (a grid), or ResultError."""
    value = meta.get(key)
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ResultError(f"{key!r} is {value!r}, not a list of positive integers")
    return value


def check_sidecar(meta):
    """That a sidecar has what reading its array needs (metric, flags.sample and the grids)."""
    if not isinstance(meta, dict):
        raise ResultError(f"it holds a JSON {type(meta).__name__}, not an object")
    if not isinstance(meta.get("metric"), str):
        raise ResultError("it names no metric")
    flags = meta.get("flags")
    sample = flags.get("sample") if isinstance(flags, dict) else None
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise ResultError("it has no flags.sample (the number of trials)")
    if "families" in meta:
        if not isinstance(meta["families"], list) or not all(isinstance(f, str) for f in meta["families"]):
            raise ResultError(f"'families' is {meta['families']!r}, not a list of names")
        _ints(meta, "widths"), _ints(meta, "sizes")
    elif "ratios" in meta:
        ratios, dvec, n = meta["ratios"], _ints(meta, "dvec"), meta.get("n")
        if (not isinstance(ratios, list) or not ratios
                or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in ratios)):
            raise ResultError(f"'ratios' is {ratios!r}, not a list of positive numbers")
        if (not isinstance(n, list) or len(n) != len(ratios)
                or not all(isinstance(row, list) and len(row) == len(dvec) for row in n)):
            raise ResultError(f"'n' is not a {len(ratios)} x {len(dvec)} matrix (ratios x dvec)")
        for row in n:
            _ints(dict(n=row), "n")
    else:
        _ints(meta, "nvec"), _ints(meta, "dvec")


def read(path):
    """(array, sidecar) of a result file, checked against each other; ResultError if not."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    try:
        values = np.load(path, allow_pickle=False)
    except OSError as e:
        raise ResultError(f"cannot read result {path}: {e.strerror or e}") from None
    except (ValueError, EOFError):  # empty, truncated, text, or a pickle (refused unread)
        raise ResultError(f"{path} is not a .npy array file as the scripts write") from None
    if not isinstance(values, np.ndarray):  # an .npz archive
        values.close()
        raise ResultError(f"{path} is an .npz archive, not a result array (.npy)")
    if values.dtype.kind not in "biuf":
        raise ResultError(f"{path} holds {values.dtype} values, not real numbers")
    try:
        meta = json.loads(sidecar.read_text())
        check_sidecar(meta)
    except OSError as e:
        raise ResultError(f"cannot read the sidecar {sidecar} of {path}: {e.strerror or e}") from None
    except (ValueError, ResultError) as e:
        raise ResultError(f"{sidecar} is not a result sidecar: {e}") from None
    names, coords = axes(meta, values.shape)
    expected = tuple(len(c) for c in coords)
    if values.shape != expected:
        raise ResultError(f"{path}: expected an array of shape {expected} ({', '.join(names)}),"
                          f" got {values.shape}")
    return values, meta


def load(path):
    """A result file as an xarray.DataArray with labelled axes (n, d, trial [, epoch]; ratio,
    d, trial [, epoch], with n as a (ratio, d) coordinate; or family, width, size, trial) and
    the sidecar's entries (flags, status, cell_seconds, versions, ...) as attributes."""
    import xarray as xr  # only notebooks need it
    values, meta = read(path)
    names, coords = axes(meta, values.shape)
    coords = dict(zip(names, coords))
    if "ratios" in meta:
        coords["n"] = (("ratio", "d"), np.array(meta["n"]))
    return xr.DataArray(values, dims=names, coords=coords, name=meta.get("metric"), attrs=meta)
