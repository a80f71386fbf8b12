"""Command line: a thin layer over emomon.models and emomon.monitor."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("emomon: not yet", file=sys.stderr)
    return 1
