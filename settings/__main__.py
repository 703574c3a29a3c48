"""`python -m settings [--write | --check]`: print the settings table, write it into docs/configuration.md,
or exit 1 when the docs differ from the declaration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from settings import DOC_BEGIN, DOC_END, DOC_PATH, table

ROOT = Path(__file__).resolve().parents[1]


def documented(text: str) -> str:
    """The text with the table between the markers replaced by the declared one."""
    head, sep, rest = text.partition(DOC_BEGIN)
    _, sep2, tail = rest.partition(DOC_END)
    if not sep or not sep2:
        raise SystemExit(f"{DOC_PATH}: the settings table markers are missing")
    return f"{head}{DOC_BEGIN}\n{table()}{DOC_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Print, write or check the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC_PATH}")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {DOC_PATH} differs")
    args = parser.parse_args(argv)
    path = ROOT / DOC_PATH
    if not (args.write or args.check):
        sys.stdout.write(table())
        return 0
    text = path.read_text()
    wanted = documented(text)
    if args.check:
        if wanted != text:
            print(f"{DOC_PATH} differs from settings/declared.py: run python -m settings --write", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
