"""Figure 3 of [LLR]: does gradient descent from a tiny init recover the target from few samples?

Target f*(x) = sum_{s=1..3} tanh(0.6 x_s + 0.8 x_{s+1} + x_{s+2}), x ~ N(0, I_5)
(docs/reference.md §8). Families, each at width multiplier N: cnn (N kernels of size 3, 7N
parameters, model rank 7), cnn-ns (the same without weight sharing, 15N, rank 15), fc (3N tanh
neurons, 21N, rank 21); all with hidden biases and no output bias. Every (family, N, training
size n, trial) is one training run: init N(0, init_var), full-batch gradient descent on the
training MSE (1/n) sum_i (f(x_i) - y_i)^2 with step --lr (auto: LR_TABLE, per family and N),
closed-form gradients (planted.llr.mse_and_grad), stopped by the StopRule: training MSE below
--tol, stalled (--stall), diverged, or --steps steps. Saved: test MSE on 1000 fresh
points, final training MSE and steps used, each an array (family, N, n, trial) with a JSON
sidecar (planted.results).

All runs of one (family, N) train together as one tensor program: parameters stacked along a
batch axis (planted.llr.Arch.forward broadcasts over it), samples zero-padded to a common
length inside a few size buckets, runs that have stopped dropped from the batch.
Seeds: training set from (seed, n, trial), test set from (seed, trial), init from
(seed, family, N, n, trial), so every family and width sees the same data and a result never
depends on which runs share a batch.
"""
import argparse
import datetime
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from planted import llr, results
from planted.cli import Parser, check_memory, default_jobs, nonnegative_int, positive_float, positive_int

FAMILIES = ("cnn", "cnn-ns", "fc")  # the order fixes the init seeds: append, never reorder
DATA, TEST, INIT = 0, 1, 2          # spawn-key tags of the three kinds of random draw
N_TEST = 1000
STEP_OVERHEAD = 1e6
METRICS = ("test_mse", "train_mse", "steps")  # the first is the main result
RESULT_FLAGS = ("families", "widths", "sizes", "lr", "steps", "tol", "stall", "check", "init_var",
                "seed", "dtype", "buckets")
STALL_FACTOR = 0.5  # a run has stalled when its training MSE fell by less than 2x over --stall steps
# ... and is below this: above it a plateau is the init's or a saddle's, which gradient descent
# from a tiny init leaves after a while (a relative level stopped runs on saddles, far from a fit)
STALL_BELOW = 1e-6
# The learning rate of each (family, width N) from [0.05, 0.5], the range of [LLR], chosen by the
# measurement in the README ([LLR] learning rates); a width between two listed ones takes the
# rate of the next smaller one.
LR_TABLE = {
    "cnn": {1: 0.3, 3: 0.3, 10: 0.3, 34: 0.3, 100: 0.2},
    "cnn-ns": {1: 0.3, 3: 0.3, 10: 0.3, 34: 0.3, 100: 0.3},
    "fc": {1: 0.3, 3: 0.3, 10: 0.3, 34: 0.3, 100: 0.3},
}
MAX_VALUES = 10**5  # longest --widths/--sizes list: far beyond any real grid, small to build


def integer(text):
    """An integer, also written like 1e9."""
    value = float(text) if "e" in text.lower() else int(text)
    if value != int(value):
        raise ValueError
    return int(value)


def int_list(text):
    """'1,3,10', '1:63' (inclusive range), '7:63:7' (with a step) or a mix: '1:5,8,10:12';
    sorted, no repeats; at most MAX_VALUES of them (counted before any is listed)."""
    out, parts = set(), []
    try:
        for part in text.split(","):
            lo, hi, *step = (integer(v) for v in part.split(":")) if ":" in part else [integer(part)] * 2
            if len(step) > 1 or (step and step[0] < 1):
                raise ValueError
            parts.append(range(lo, hi + 1, *step))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected integers like 1,3,10 or 1:63, got {text!r}") from None
    if sum(len(r) for r in parts) > MAX_VALUES:
        raise argparse.ArgumentTypeError(f"more than {MAX_VALUES:,} values in {text!r}")
    for r in parts:
        out.update(r)
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return sorted(out)


def bucket_count(text):
    value = int(text) if text.strip().lstrip("-").isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (0: auto), got {text}")
    return value


def family_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in FAMILIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"families are {', '.join(FAMILIES)}; got {text!r}")
    return [f for f in FAMILIES if f in names]


def family_arch(family, N):
    """The width-N network of a family and the model rank of the target in it (§8)."""
    narrow, _ = llr.fig3_target(family)
    return llr.widen(narrow, N), llr.closed_form(narrow)[0]


def lr_auto(family, N):
    """The LR_TABLE rate of a (family, width)."""
    table = LR_TABLE[family]
    return table[max([w for w in table if w <= N], default=min(table))]


def run_lr(args, family, N):
    return lr_auto(family, N) if args.lr == "auto" else args.lr


def learning_rate(text):
    if text == "auto":
        return text
    try:
        return positive_float(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive number, got {text}") from None


def batch_bytes(args, family, N):
    """Memory of the largest batch of a (family, N), at least: the hidden activations and their
    gradient (two arrays of runs x n x units x positions) plus the parameters, their gradient
    and the final copy, in --dtype; the features; and the test chunk in float64."""
    arch = family_arch(family, N)[0]
    runs, n = len(args.sizes) * args.sample, max(args.sizes)
    size = 4 if args.dtype == "float32" else 8
    P = 1 if family == "fc" else arch.P
    hidden = runs * n * P * arch.units[0]
    return size * (2 * hidden + 4 * runs * arch.param_count + runs * n * P * (llr.FIG3_D + 1)) + \
        8 * 16 * N_TEST * P * arch.units[0] * 3


def check_size(parser, args):
    """Refuse, before any allocation, a grid whose largest batch would not fit this machine's
    memory (--insist overrides)."""
    if args.insist:
        return
    need, family, N = max((batch_bytes(args, f, N), f, N) for f in args.families for N in args.widths)
    check_memory(parser, need, f"the batch of {family} at width {N:,} ({len(args.sizes):,} sizes up to "
                 f"{max(args.sizes):,}, {args.sample} trials)", "use smaller --widths/--sizes")


def rng_for(seed, *key):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def training_set(seed, n, trial):
    X = rng_for(seed, DATA, n, trial).standard_normal((n, llr.FIG3_D))
    return X, llr.fig3_function(X)


def test_set(seed, trial):
    X = rng_for(seed, TEST, trial).standard_normal((N_TEST, llr.FIG3_D))
    return X, llr.fig3_function(X)


def initial_theta(seed, family, N, n, trial, M, init_var):
    return np.sqrt(init_var) * rng_for(seed, INIT, FAMILIES.index(family), N, n, trial).standard_normal(M)


@dataclass(frozen=True)
class StopRule:
    """When a run stops: training MSE below `tol`, or stalled (below STALL_BELOW and fallen by
    less than a factor 1 / STALL_FACTOR over the last `stall` steps; 0: off), or diverged, or
    `steps` steps. Tested every `check` steps."""
    tol: float
    stall: int
    steps: int
    check: int

    def describe(self):
        stall = (f", stalled (below {STALL_BELOW:g}, fell < {1 / STALL_FACTOR:g}x over {self.stall} steps)"
                 if self.stall else "")
        return f"training MSE < {self.tol:g}{stall} (checked every {self.check} steps) or {self.steps} steps"


def train_batch(arch, Z, Y, W, theta, lr, rule, progress):
    """Full-batch gradient descent of B runs at once, as one batched tensor program, with the
    closed-form gradient (planted.llr.mse_and_grad).

    Z (B, n_max, ...) zero-padded features of the inputs (`Arch.features`), Y (B, n_max)
    labels, W (B, n_max) sample weights (1/n on a run's n samples, 0 on padding), theta (B, M)
    initial parameters, lr (B,) step sizes. Returns final theta (B, M), final training MSE
    (B,), steps used (B,). Runs that meet the StopRule leave the batch, so the rest run cheaper.
    `progress(runs, steps, overhead)` is told the work done: `steps` steps of `runs` runs, plus
    the batch's fixed per-step overhead if `overhead`.
    """
    B = theta.shape[0]
    final = theta.clone()
    loss = torch.full((B,), float("nan"), dtype=torch.float64)
    steps = np.full(B, rule.steps, dtype=float)
    live = torch.arange(B)
    th, lr = theta.clone(), lr.to(theta.dtype)[:, None]
    window = -(-rule.stall // rule.check)  # checks per stall window (0: off)
    past = []  # training MSE at the last `window` checks
    for step in range(rule.steps + 1):
        per, grad = llr.mse_and_grad(arch, th, Z, Y, W)
        if step % rule.check == 0 or step == rule.steps:
            # A diverged run is frozen too: it would only spread NaN through the batch.
            done = (per < rule.tol) | ~torch.isfinite(per)
            if window and len(past) == window:
                done |= (per > STALL_FACTOR * past[0]) & (per < STALL_BELOW)
            if step == rule.steps:
                done[:] = True
            past = (past + [per])[-window:] if window else past
            if done.any():
                idx = live[done]
                final[idx] = th[done]
                loss[idx] = per[done].double()
                steps[idx.numpy()] = step
                progress(int(done.sum()), rule.steps - step, False)
                keep = ~done
                live, Z, Y, W, th, grad, lr = (v[keep] for v in (live, Z, Y, W, th, grad, lr))
                past = [p[keep] for p in past]
                if not len(live):
                    progress(0, rule.steps - step, True)
                    break
        th = th - lr * grad
        progress(len(live), 1, True)
    return final, loss, steps


def test_mse(arch, theta, trials, seed, chunk=16):
    """Mean squared error on each run's trial test set, evaluated in float64 (chunked: a batch of
    wide networks on 1000 points at once would take gigabytes)."""
    tests = {t: [torch.as_tensor(v) for v in test_set(seed, t)] for t in set(trials)}
    out = []
    for start in range(0, len(theta), chunk):
        th = theta[start:start + chunk].double()
        Xt = torch.stack([tests[t][0] for t in trials[start:start + chunk]])
        Yt = torch.stack([tests[t][1] for t in trials[start:start + chunk]])
        with torch.no_grad():
            out.append(((arch.forward(th, Xt) - Yt) ** 2).mean(1))
    return torch.cat(out).numpy()


def size_buckets(args, arch):
    """The training sizes split into buckets of neighbours; each bucket is one batch, padded to
    its largest size. Auto (--buckets 0): one bucket for small networks, whose steps cost
    mostly fixed overhead, four for the rest, where padding to n = 63 would double the work."""
    count = args.buckets or (1 if arch.param_count < 500 else 4)
    return [list(chunk) for chunk in np.array_split(np.array(args.sizes), min(count, len(args.sizes)))]


def tasks(args):
    """(family, N, bucket, work estimate) of every batch, largest first, so that parallel
    workers finish together."""
    out = []
    for family in args.families:
        for N in args.widths:
            arch = family_arch(family, N)[0]
            for bucket in size_buckets(args, arch):
                cost = step_cost(max(bucket), arch.param_count)(len(bucket) * args.sample)
                out.append((family, N, tuple(int(n) for n in bucket), cost * args.steps))
    return sorted(out, key=lambda task: -task[3])


def run_task(family, N, bucket, args, progress=None):
    """All (n, trial) runs of one (family, N) and one size bucket, as one batch.
    Returns arrays (len(bucket), sample) of test MSE, train MSE, steps, and the CPU seconds."""
    cpu = time.process_time()
    torch.set_num_threads(args.threads)
    arch, _ = family_arch(family, N)
    dtype = getattr(torch, args.dtype)
    runs = [(n, t) for n in bucket for t in range(args.sample)]
    n_max = max(bucket)
    X = np.zeros((len(runs), n_max, llr.FIG3_D))
    Y = np.zeros((len(runs), n_max))
    W = np.zeros((len(runs), n_max))
    theta = np.empty((len(runs), arch.param_count))
    for b, (n, t) in enumerate(runs):
        X[b, :n], Y[b, :n] = training_set(args.seed, n, t)
        W[b, :n] = 1.0 / n
        theta[b] = initial_theta(args.seed, family, N, n, t, arch.param_count, args.init_var)
    X, Y, W, theta = (torch.as_tensor(v, dtype=dtype) for v in (X, Y, W, theta))
    cost = step_cost(n_max, arch.param_count)
    report = (lambda runs, k, overhead: progress(cost(runs, overhead) * k)) if progress else (lambda *a: None)
    lr = torch.full((len(runs),), run_lr(args, family, N))
    rule = StopRule(args.tol, args.stall, args.steps, args.check)
    final, loss, used = train_batch(arch, arch.features(X), Y, W, theta, lr, rule, report)
    shape = (len(bucket), args.sample)
    errors = test_mse(arch, final, [t for _, t in runs], args.seed).reshape(shape)
    return errors, loss.numpy().reshape(shape), used.reshape(shape), time.process_time() - cpu


def step_cost(n_max, M):
    """Rough cost of one gradient step of a batch, for the progress bar's ETA and the order of
    the tasks: a fixed overhead (Python and torch dispatch, about 1e6 multiply-adds' worth on a
    CPU) plus the arithmetic. Finished runs report their unused steps, so the ETA is an upper
    bound."""
    def cost(runs, overhead=True):
        return STEP_OVERHEAD * overhead + runs * n_max * M
    return cost


def result_tail(parser, args):
    """File-name tail: trials, then every result-changing flag not at its default."""
    tail = f"sample{args.sample}"
    for flag in RESULT_FLAGS:
        value, default = getattr(args, flag), parser.get_default(flag)
        if isinstance(default, str) and flag in ("families", "widths", "sizes"):
            default = parser._option_string_actions[f"--{flag}"].type(default)
        if value != default:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            tail += f"_{flag}{text}"
    return tail


def make_parser():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--families", type=family_list, default="cnn,cnn-ns,fc",
                   help="comma list of cnn, cnn-ns, fc (default: all three)")
    p.add_argument("--widths", type=int_list, default="1,3,10,34,100", help="width multipliers N")
    p.add_argument("--sizes", type=int_list, default="1:63", help="training sizes n, e.g. 1:63 or 3,12")
    p.add_argument("--sample", type=positive_int, default=5, help="independent trials per (family, N, n)")
    p.add_argument("--lr", type=learning_rate, default="auto",
                   help="gradient-descent step on the training MSE; auto: per (family, N), LR_TABLE")
    p.add_argument("--steps", type=positive_int, default=10000, help="step budget of a run")
    p.add_argument("--tol", type=positive_float, default=1e-10,
                   help="a run stops once its training MSE is below this")
    p.add_argument("--stall", type=nonnegative_int, default=5000,
                   help="a run stops once its training MSE, below 1e-6, fell by less than 2x over this "
                        "many steps; 0: never")
    p.add_argument("--check", type=positive_int, default=50, help="test the stopping rule every this many steps")
    p.add_argument("--init_var", type=positive_float, default=1e-20, help="variance of the N(0, var) init")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="training precision (test error is always evaluated in float64)")
    p.add_argument("--buckets", type=bucket_count, default=0,
                   help="size buckets per (family, N); fewer pad more, more cost more calls; 0: auto")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="root of all seeds")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (1: on a shared or small machine, intra-op threads mostly wait)")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help="worker processes, each training whole batches with --threads threads "
                        "(default: one per core; results do not depend on it)")
    p.add_argument("--save_folder", default="results", help="where result files go")
    p.add_argument("--insist", action="store_true", help="run even when a batch looks too large for the memory")
    return p


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    check_size(parser, args)
    if args.lr != "auto" and not 0.05 <= args.lr <= 0.5:
        print(f"llr_train: note: --lr {args.lr} is outside [0.05, 0.5], the range of [LLR]", file=sys.stderr)
    problem = results.check_folder(args.save_folder)
    if problem:
        parser.error(problem)
    folder = Path(args.save_folder)
    tail = result_tail(parser, args)
    shape = (len(args.families), len(args.widths), len(args.sizes), args.sample)
    arrays = {name: np.full(shape, np.nan) for name in METRICS}
    cpu_seconds = np.zeros(shape[:2])
    todo = tasks(args)
    total = sum(task[3] for task in todo)
    start = time.time()

    def store(family, N, bucket, out):
        i, j = args.families.index(family), args.widths.index(N)
        k = [args.sizes.index(n) for n in bucket]
        for name, value in zip(METRICS, out[:3]):
            arrays[name][i, j, k] = value
        cpu_seconds[i, j] += out[3]

    with tqdm(total=100.0, desc="llr_train", file=sys.stderr, mininterval=1.0, dynamic_ncols=True,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]") as bar:
        if args.jobs == 1:
            for family, N, bucket, _ in todo:
                bar.set_description_str(f"llr_train {family} N={N} n={bucket[0]}..{bucket[-1]}")
                store(family, N, bucket, run_task(family, N, bucket, args, lambda u: bar.update(100.0 * u / total)))
        else:
            # Workers report only when a batch ends: the bar moves in steps of one batch.
            with ProcessPoolExecutor(args.jobs) as pool:
                running = {pool.submit(run_task, family, N, bucket, args): (family, N, bucket, work)
                           for family, N, bucket, work in todo}
                for future in as_completed(running):
                    family, N, bucket, work = running[future]
                    store(family, N, bucket, future.result())
                    bar.update(100.0 * work / total)
    wall = time.time() - start
    files = results.file_names("llr_train", tail, METRICS)
    meta = dict(
        experiment="llr_train", flags=vars(args), argv=sys.argv if argv is None else list(argv),
        axes=list(results.LLR_AXES), families=args.families, widths=args.widths,
        sizes=args.sizes, model_rank={f: family_arch(f, 1)[1] for f in args.families},
        param_count={f: [family_arch(f, N)[0].param_count for N in args.widths] for f in args.families},
        loss="training MSE (1/n) sum_i (f(x_i) - y_i)^2; test MSE on 1000 fresh points",
        stopping_rule=StopRule(args.tol, args.stall, args.steps, args.check).describe(),
        lr={f: [run_lr(args, f, N) for N in args.widths] for f in args.families},
        diverged=int(np.sum(~np.isfinite(arrays["train_mse"]))),
        files=files, versions=results.versions(), date=datetime.datetime.now().isoformat(timespec="seconds"),
        wall_seconds=round(wall, 3), cpu_seconds=round(float(cpu_seconds.sum()), 3),
        family_width_cpu_seconds=np.round(cpu_seconds, 3).tolist(), cores_used=args.jobs * args.threads)
    results.write(folder, files, arrays, meta)
    recovered = np.mean(arrays["test_mse"] < 1e-6)
    print(f"llr_train: {int(np.prod(shape))} runs in {wall:.1f} s ({meta['cpu_seconds']:.0f} CPU s), "
          f"{meta['diverged']} diverged, "
          f"{recovered:.0%} with test MSE < 1e-6")
    main_path = folder / files["test_mse"]
    print(main_path)
    return main_path


if __name__ == "__main__":
    main()
