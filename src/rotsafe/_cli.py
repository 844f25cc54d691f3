"""The ``rotsafe`` command. Its dependencies come with the ``drill`` extra,
so this entry point only says so when they are missing."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``rotsafe`` command line; exit 2 if the extra is missing."""
    try:
        from rotsafe._drill._command import cli  # noqa: PLC0415
    except ImportError as exc:
        sys.stderr.write(
            f"rotsafe: the command line needs the drill extra ({exc.name} is "
            "missing): pip install 'rotsafe[drill]'\n"
        )
        sys.exit(2)

    cli()
