"""The ``rotsafe`` command. Its dependencies come with the ``drill`` extra,
so this entry point only says so when they are missing, and ends quietly
on Ctrl-C while they load."""

from __future__ import annotations

import signal
import sys

# What the drill prints on Ctrl-C, and its exit status, whenever it comes.
INTERRUPTED = "rotsafe drill: interrupted; what it made has been removed"
EXIT_INTERRUPTED = 128 + signal.SIGINT


def main() -> None:
    """Run the ``rotsafe`` command line.

    Exits 2 if the drill extra is missing, 130 on Ctrl-C while it loads.
    """
    try:
        from rotsafe._drill._command import cli  # noqa: PLC0415
    except ImportError as exc:
        sys.stderr.write(
            f"rotsafe: the command line needs the drill extra ({exc.name} is "
            "missing): pip install 'rotsafe[drill]'\n"
        )
        sys.exit(2)
    except KeyboardInterrupt:
        # Nothing is made before the drill's modules have loaded.
        sys.stderr.write(INTERRUPTED + "\n")
        sys.exit(EXIT_INTERRUPTED)

    cli()
