"""The command line: run the five sections, print Markdown, write JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import _report
from bench._herd import thundering_herd
from bench._overhead import connect_overhead
from bench._scaling import fleet, steady_state, thread_scaling
from bench._warm import warm_read
from bench._window import rotation_window
from rotsafe.testing import (
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
    RotationHarness,
    SecretsManagerServer,
)

logger = logging.getLogger("bench")

_PACKAGES = (
    "rotsafe",
    "aws-secretsmanager-caching",
    "aws-lambda-powertools",
    "boto3",
    "moto",
    "SQLAlchemy",
    "psycopg",
    "PyMySQL",
)


@dataclass(frozen=True)
class Sizes:
    """How much each section measures; durations in seconds."""

    warm_rounds: int
    warm_seconds: float
    connect_rounds: int
    connect_per_round: int
    windows: dict[float, int]
    threads: int
    pause: float
    lead: float
    tail: float
    herd_threads: int
    herd_repeats: int
    scaling_threads: tuple[int, ...]
    scaling_window: float
    scaling_repeats: int


FULL = Sizes(
    warm_rounds=15,
    warm_seconds=0.2,
    connect_rounds=15,
    connect_per_round=10,
    windows={2.0: 5, 60.0: 3},
    threads=8,
    pause=0.01,
    lead=1.0,
    tail=1.0,
    herd_threads=64,
    herd_repeats=5,
    scaling_threads=(1, 4, 16, 64),
    scaling_window=2.0,
    scaling_repeats=3,
)

QUICK = Sizes(
    warm_rounds=3,
    warm_seconds=0.02,
    connect_rounds=3,
    connect_per_round=5,
    windows={1.0: 1},
    threads=4,
    pause=0.01,
    lead=0.3,
    tail=0.3,
    herd_threads=64,
    herd_repeats=1,
    scaling_threads=(1, 8),
    scaling_window=1.0,
    scaling_repeats=1,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark rotsafe against the alternatives: warm reads, "
            "connect overhead, the rotation window, a thundering herd and "
            "scaling. Prints Markdown; about 25 minutes, or about a minute "
            "with --quick."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and a 1 s window, to check that it runs (CI)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results"
    )
    parser.add_argument(
        "--database",
        choices=("postgres", "mariadb"),
        default="postgres",
        help="the server sections 3 to 5 rotate on (default: postgres)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr
    )
    # rotsafe logs every refused login; thousands of them would drown this.
    logging.getLogger("rotsafe").setLevel(logging.ERROR)
    # moto's HTTP server logs every request it answers.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # 64 threads share one boto3 client and overflow its 10 connections.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

    sizes = QUICK if arguments.quick else FULL
    command = "python -m bench " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    results = run(sizes, database=arguments.database, command=command.strip())

    report = _report.render(results)
    sys.stdout.write(report)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


@contextlib.contextmanager
def _servers() -> Iterator[
    tuple[SecretsManagerServer, MariaDBServer, PostgresServer]
]:
    with (
        SecretsManagerServer() as secrets_manager,
        MariaDBServer() as mariadb,
        PostgresServer() as postgres,
    ):
        yield secrets_manager, mariadb, postgres


def run(sizes: Sizes, *, database: str, command: str) -> dict[str, Any]:
    """Start the servers, then measure; return results as JSON values."""
    with _servers() as (secrets_manager, mariadb, postgres):
        return measure(
            sizes,
            secrets_manager=secrets_manager,
            mariadb=mariadb,
            postgres=postgres,
            rotating=postgres if database == "postgres" else mariadb,
            command=command,
        )


def measure(
    sizes: Sizes,
    *,
    secrets_manager: SecretsManagerServer,
    mariadb: DatabaseServer,
    postgres: DatabaseServer,
    rotating: DatabaseServer,
    command: str,
) -> dict[str, Any]:
    """Run the five sections at ``sizes`` on running servers.

    Args:
        sizes: How much each section measures.
        secrets_manager: The local Secrets Manager.
        mariadb: A MariaDB server for section 2.
        postgres: A PostgreSQL server for section 2.
        rotating: The server sections 1 and 3 to 5 use.
        command: The command line, for the report.

    Returns:
        Every section's results, the targets and the run's description,
        as JSON values.
    """
    started = time.monotonic()
    load_before = _load()
    results: dict[str, Any] = {}

    logger.info("1. warm read")
    with RotationHarness(rotating, secrets_manager) as harness:
        results["warm_read"] = warm_read(
            secrets_manager.client,
            harness.secret_id,
            rounds=sizes.warm_rounds,
            seconds=sizes.warm_seconds,
        )

    results["connect"] = []
    for server in (mariadb, postgres):
        logger.info("2. connect overhead on %s", server.family)
        results["connect"].append(
            connect_overhead(
                server,
                secrets_manager,
                rounds=sizes.connect_rounds,
                per_round=sizes.connect_per_round,
            )
        )

    logger.info("3. rotation window, windows %s", list(sizes.windows))
    results["rotation"] = rotation_window(
        rotating,
        secrets_manager,
        windows=sizes.windows,
        threads=sizes.threads,
        lead=sizes.lead,
        tail=sizes.tail,
        pause=sizes.pause,
    )

    logger.info("4. thundering herd")
    results["herd"] = thundering_herd(
        rotating,
        secrets_manager,
        threads=sizes.herd_threads,
        repeats=sizes.herd_repeats,
    )

    logger.info("5. scaling, threads %s", sizes.scaling_threads)
    results["scaling"] = {
        "threads": thread_scaling(
            rotating,
            secrets_manager,
            threads=sizes.scaling_threads,
            window=sizes.scaling_window,
            repeats=sizes.scaling_repeats,
            lead=sizes.lead,
            tail=sizes.tail,
            pause=sizes.pause,
        ),
        "fleet": fleet(
            steady_state(rotating, secrets_manager), results["rotation"]
        ),
    }

    results["targets"] = [
        each
        for section in (
            results["warm_read"],
            *results["connect"],
            results["rotation"],
            results["herd"],
        )
        for each in section["targets"]
    ]
    servers = [_server_version(server) for server in (mariadb, postgres)]
    results["meta"] = _meta(command, sizes, servers, load_before, started)
    return results


def _meta(
    command: str,
    sizes: Sizes,
    servers: list[str],
    load_before: str,
    started: float,
) -> dict[str, Any]:
    versions = (
        ", ".join(f"{name} {_version(name)}" for name in _PACKAGES)
        + ", "
        + ", ".join(servers)
    )
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": _machine(),
        "python": f"{platform.python_implementation()} "
        f"{platform.python_version()}",
        "versions": versions,
        "load_before": load_before,
        "load_after": _load(),
        "wall_seconds": time.monotonic() - started,
        "sizes": _as_json(asdict(sizes)),
    }


def _as_json(value: Any) -> Any:
    """Return ``value`` as JSON would give it back: str keys, lists."""
    if isinstance(value, dict):
        return {str(key): _as_json(each) for key, each in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(each) for each in value]
    return value


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def _server_version(server: DatabaseServer) -> str:
    connection = server.admin_connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT version()")
        row = cursor.fetchone()
    finally:
        connection.close()
    text = str(row[0]) if row else "unknown"
    if server.family == "postgresql":
        return " ".join(text.split()[:2])
    return f"MariaDB {text}"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = f"{platform.system()} {platform.release()}"
    return f"{model}, {os.cpu_count()} CPUs, {system}"


def _load() -> str:
    return " ".join(f"{each:.2f}" for each in os.getloadavg())
