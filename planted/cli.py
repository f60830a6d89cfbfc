"""Command-line pieces every script shares: argparse with one-line errors, and flag types."""
import argparse
import os

import numpy as np


class Parser(argparse.ArgumentParser):
    """argparse, but bad input is one line on stderr (exit 2), without the usage block.

    `add_check(fn)` adds a check of the parsed flags together (fn(args) -> message or None),
    run right after parsing, before any work.
    """

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.checks = []

    def add_check(self, check):
        self.checks.append(check)

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        for check in self.checks:
            message = check(ns)
            if message:
                self.error(message)
        return ns, rest

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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


def default_jobs():
    """Worker processes by default: every core this process may run on."""
    return len(os.sched_getaffinity(0))
