"""Command-line pieces every script shares: argparse with one-line errors, and flag types."""
import argparse
import os
import re

import numpy as np

MAX_LIST = 10**5  # longest number list of a flag: far beyond any grid, small to build
# argparse reads "-inf", "-1e-3", "-nan" or "-1:2:0.5" as option names, so `--sigma -inf` failed
# with "expected one argument" instead of the flag's own message; no flag of ours looks like a
# number or a list of numbers.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|inf(inity)?|nan)([:,].*)?$",
                             re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """argparse, but bad input is one line on stderr (exit 2), without the usage block.

    `add_check(fn)` adds a check of the parsed flags together (fn(args) -> message or None),
    run right after parsing, before any work. `given` holds the flags with action=Given that
    the last command line set (a check may need to tell `--n 400` from the default 400).
    """

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.checks = []
        self.given = set()
        self._negative_number_matcher = NEGATIVE_NUMBER

    def add_check(self, check):
        self.checks.append(check)

    def parse_known_args(self, args=None, namespace=None):
        self.given = set()
        ns, rest = super().parse_known_args(args, namespace)
        for name, value in vars(ns).items():
            if isinstance(value, float) and value == 0:
                setattr(ns, name, 0.0)  # -0.0 is 0: one result name, one cell store
            if isinstance(value, str) and not value.strip():
                self.error(f"{self._flag(name)}: must not be empty")
        for check in self.checks:
            message = check(ns)
            if message:
                self.error(message)
        return ns, rest

    def _flag(self, dest):
        for action in self._actions:
            if action.dest == dest:
                return action.option_strings[0] if action.option_strings else action.dest
        return dest

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class Given(argparse.Action):
    """Store the flag's value and note in the parser's `given` that the command line set it."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        parser.given.add(self.dest)


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def nonnegative_float(text):
    value = float(text)
    if not value >= 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def number_list(kind, text):
    """'a,b,c' or 'start:stop:step' (stop included, within rounding) as a sorted list of
    distinct positive numbers of `kind` (int or float); ValueError saying what is wrong."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not (np.isfinite([start, stop, step]).all() and step > 0 and stop >= start):
                raise ValueError
        else:
            values = np.array([float(x) for x in text.split(",")])
    except ValueError:
        raise ValueError(f"expected a list like 1,2,3 or start:stop:step, got {text!r}") from None
    if ":" in text:
        if (stop - start) / step >= MAX_LIST:
            raise ValueError(f"more than {MAX_LIST:,} values in {text!r}")
        values = np.round(np.arange(start, stop + step / 2, step), 10)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"expected positive numbers, got {text!r}")
    if kind is int and not np.all(values == np.round(values)):
        raise ValueError(f"expected whole numbers, got {text!r}")
    if kind is int and values.max() >= 2**53:  # beyond, a float no longer holds every integer
        raise ValueError(f"expected numbers below 2^53, got {text!r}")
    return sorted(set((values.astype(int) if kind is int else values).tolist()))


def positive_ints(text):
    """A flag's `number_list` of positive integers ('25,50,100' or '10:100:10')."""
    try:
        return number_list(int, text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_floats(text):
    """A flag's `number_list` of positive numbers ('1.5,2,2.5' or '1.5:2.5:0.05')."""
    try:
        return number_list(float, text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def scheduler_address(text):
    """A Dask scheduler address, checked for its form (connecting is the sweep's job)."""
    if not text.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise argparse.ArgumentTypeError(f"expected an address like tcp://HOST:PORT, got {text!r}")
    return text


def default_jobs():
    """Worker processes by default: every core this process may run on."""
    return len(os.sched_getaffinity(0))


def machine_memory():
    """Physical memory of this machine, in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(parser, need, what, hint):
    """A one-line usage error when `need` bytes (a lower bound of what `what` allocates) exceed
    this machine's memory; `hint` says which flags to change (the callers' --insist skips this)."""
    if need > machine_memory():
        parser.error(f"{what} needs at least {need / 2**30:,.1f} GiB, this machine has"
                     f" {machine_memory() / 2**30:,.1f} GiB: {hint} (or --insist)")
