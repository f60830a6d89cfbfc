"""What the figure scripts share: the headless backend, loading a result, output checks, cell
edges, saving."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files: no display needed, none assumed
import numpy as np  # noqa: E402

from planted import results  # noqa: E402


def load(parser, path, *axes):
    """A result's array (as floats) and its sidecar, read by planted.results.read and checked to
    have one of the axes `axes` (e.g. results.SWEEP_AXES, results.RATIO_AXES), or a one-line
    usage error."""
    try:
        values, meta = results.read(path)
    except results.ResultError as e:
        parser.error(str(e))
    names = results.axes(meta, values.shape)[0]
    if names not in [tuple(a) for a in axes]:
        wanted = " or ".join(f"({', '.join(a)})" for a in axes)
        parser.error(f"{path}: expected a result with axes {wanted}, got one with axes"
                     f" ({', '.join(names)}) of shape {values.shape}")
    return values.astype(float), meta


def out_path(parser, out, default):
    """The PNG to write (--out, else `default` with .png), or a one-line usage error."""
    out = Path(out or Path(default).with_suffix(".png"))
    if out.suffix.lower() != ".png":
        parser.error(f"--out {out}: the figure is written as PNG, name it *.png")
    if not out.parent.is_dir():
        parser.error(f"--out {out}: folder {out.parent} does not exist")
    return out


def edges(grid):
    """Cell edges around the grid points, so that each value is drawn centred on its cell."""
    grid = np.asarray(grid, float)
    step = np.diff(grid).min() if len(grid) > 1 else 1.0
    return np.append(grid - step / 2, grid[-1] + step / 2)


def save_all(writes):
    """Write several files [(path, write(tmp))] each through a temporary file, renaming them only
    once every one is written: if any write fails, none of them is left behind (nor a temporary)."""
    if not writes:
        return
    (path, write), rest = writes[0], writes[1:]
    results.atomic_save(path, lambda tmp: (write(tmp), save_all(rest)))


def save_figure(parser, fig, out, also=()):
    """Write a matplotlib figure, and the files of `also` ([(path, write(tmp))], e.g. its fit
    CSV), all or none; an unwritable path is a usage error. Prints the paths, the PNG last."""
    try:
        save_all([*also, (out, lambda tmp: fig.savefig(tmp, dpi=130))])
    except OSError as e:
        parser.error(f"cannot write --out {out}{' with ' + ', '.join(str(p) for p, _ in also) if also else ''}:"
                     f" {e.strerror or e}; nothing written")
    for path, _ in also:
        print(path)
    print(out)
    return out
