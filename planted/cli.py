"""Command-line pieces every script shares: argparse with one-line errors, and flag types."""
import argparse
import os
import re

import numpy as np

# argparse reads "-inf", "-1e-3" or "-nan" as option names, so `--sigma -inf` failed with
# "expected one argument" instead of the flag's own message; no flag of ours looks like a number.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|inf(inity)?|nan)$",
                             re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """argparse, but bad input is one line on stderr (exit 2), without the usage block.

    `add_check(fn)` adds a check of the parsed flags together (fn(args) -> message or None),
    run right after parsing, before any work.
    """

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.checks = []
        self._negative_number_matcher = NEGATIVE_NUMBER

    def add_check(self, check):
        self.checks.append(check)

    def parse_known_args(self, args=None, namespace=None):
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
