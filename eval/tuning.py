"""Threshold tuning (issue 5) — placeholder CLI wiring; the sweep lives here."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=lambda _a: (print("tune: not implemented yet"), 2)[1])
