"""``rotsafe drill``: options, output and exit status of the live drill.

Exit status: 0 when rotsafe's service saw no failed operation, 1 when it
did, 2 when an option is wrong or the drill could not set up or write its
output, 130 when interrupted with Ctrl-C and 143 when terminated
(SIGTERM). The report goes to standard output; progress and setup
messages to standard error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.markup import escape

from rotsafe._cli import EXIT_INTERRUPTED, INTERRUPTED
from rotsafe._drill._existing import AdminURLError, family_of
from rotsafe._drill._figures import StepTime
from rotsafe._drill._plot import check_matplotlib, plot
from rotsafe._drill._render import LiveView, describe_step, report
from rotsafe._drill._rig import Rig, RigOptions, SetupError
from rotsafe._drill._run import DrillOptions, Progress, run
from rotsafe._drill._services import BASELINES, POOLS
from rotsafe.testing._moto import serves_region
from rotsafe.testing._rotation import STRATEGIES

EXIT_SETUP = 2
EXIT_TERMINATED = 128 + signal.SIGTERM

_DATABASES = {"postgres": "postgresql", "mysql": "mysql"}
# As AWS names its regions: lowercase words and numbers joined by hyphens.
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class Seconds(click.FloatRange):
    """A finite number of seconds within a range; NaN and infinity fail."""

    # click's message for a value that is not a number ends with this name.
    name = "number of seconds"

    def convert(
        self,
        value: Any,
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(
                f"{value!r} is not a finite number of seconds", param, ctx
            )
        return seconds


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: cleaned up as for Ctrl-C, with its own exit status."""


def _endpoint(
    context: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """Accept an http or https URL with a host, as boto3 needs."""
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = f"{value!r} is not an http:// or https:// URL with a host"
        raise click.BadParameter(msg)
    return value


def _region(context: click.Context, param: click.Parameter, value: str) -> str:
    """Accept a name shaped like an AWS region's, such as eu-west-1."""
    if not _REGION.fullmatch(value):
        msg = f"{value!r} is not a region name such as eu-west-1"
        raise click.BadParameter(msg)
    return value


def _writable(
    context: click.Context, param: click.Parameter, value: Path | None
) -> Path | None:
    """Refuse an output path that cannot be written, before the drill runs."""
    if value is None:
        return None
    folder = value.parent
    if not folder.is_dir():
        raise click.BadParameter(f"the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write in the folder {str(folder)!r}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rotsafe")
def cli() -> None:
    """rotsafe: database connections that survive password rotation."""


@cli.command()
@click.option(
    "--database",
    type=click.Choice(sorted(_DATABASES)),
    default="postgres",
    show_default=True,
    help="postgres: an embedded PostgreSQL (pgserver); mysql: a throwaway "
    "MariaDB or MySQL from the binaries on PATH.",
)
@click.option(
    "--admin-url",
    metavar="URL",
    help="Use an existing server instead, through a SQLAlchemy URL of an "
    "admin account (postgresql://admin:pw@host/postgres, "
    "mysql://root:pw@host/). The drill creates its own database and users "
    "there and drops them afterwards.",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="single-user",
    show_default=True,
    help="How the secret is rotated.",
)
@click.option(
    "--window",
    type=Seconds(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Time between the database change (setSecret) and the Secrets "
    "Manager change (finishSecret).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Load threads per service.",
)
@click.option(
    "--duration",
    type=Seconds(min=1),
    default=12.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds of load; the rotation starts after a quarter of it (2 s "
    "at most) and the load goes on at least 2 s past the last step.",
)
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    default="queue",
    show_default=True,
    help="queue: a pool of one connection per thread, each replaced after "
    "--recycle seconds; null: a new connection for every operation.",
)
@click.option(
    "--recycle",
    type=Seconds(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a pooled connection lives (queue pool).",
)
@click.option(
    "--baseline",
    type=click.Choice(BASELINES),
    default="read-once",
    show_default=True,
    help="read-once: reads AWSCURRENT at start and keeps it; "
    "reread-current: re-reads AWSCURRENT when refused and retries once.",
)
@click.option(
    "--secrets-endpoint",
    metavar="URL",
    callback=_endpoint,
    help="A Secrets Manager endpoint to use instead of a local moto server; "
    "AWS credentials come from the usual places.",
)
@click.option(
    "--region",
    default="us-east-1",
    show_default=True,
    callback=_region,
    help="The region of the Secrets Manager clients.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_writable,
    metavar="PATH",
    help="Also write the figures as JSON to PATH.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_writable,
    metavar="PATH.png",
    help="Also draw the timeline to PATH.png (needs rotsafe[plot]).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show rotsafe's log messages while the drill runs.",
)
@click.pass_context
def drill(
    context: click.Context,
    *,
    database: str,
    admin_url: str | None,
    strategy: str,
    window: float,
    threads: int,
    duration: float,
    pool: str,
    recycle: float,
    baseline: str,
    secrets_endpoint: str | None,
    region: str,
    json_path: Path | None,
    plot_path: Path | None,
    verbose: bool,
) -> None:
    """Rotate a database password under load and compare two services.

    A baseline service that logs in the way most services do and a service
    using rotsafe run the same queries against one database and secret
    while the secret is rotated. The figures of both are shown side by
    side. Exit status 0 when the rotsafe service saw no failed operation,
    1 when it did, 2 when an option is wrong or the drill could not set up
    or write its output, 130 when interrupted with Ctrl-C, 143 when
    terminated (SIGTERM).
    """
    err = Console(stderr=True)
    out = Console()
    options = DrillOptions(
        strategy=strategy,
        window=window,
        duration=duration,
        threads=threads,
        pool=pool,
        recycle=recycle,
        baseline=baseline,
    )
    rig_options = RigOptions(
        database=database,
        admin_url=admin_url,
        secrets_endpoint=secrets_endpoint,
        region=region,
        clone=strategy == "alternating-users",
        previous=strategy == "rollback",
    )
    try:
        _check_database(context, database, admin_url)
        _check_region(region, secrets_endpoint)
        if plot_path is not None:
            check_matplotlib()
        with _interruptible(), _logging(err, verbose):
            status = _drill(
                err,
                out,
                rig_options=rig_options,
                options=options,
                json_path=json_path,
                plot_path=plot_path,
            )
    except (SetupError, ImportError) as exc:
        message = str(exc)
        if isinstance(exc, ImportError) and "rotsafe[" not in message:
            message += "; pip install 'rotsafe[drill]'"
        err.print(
            f"[bold red]rotsafe drill: cannot set up:[/] {escape(message)}",
            soft_wrap=True,
        )
        context.exit(EXIT_SETUP)
    except KeyboardInterrupt as exc:
        err.print(INTERRUPTED)
        terminated = isinstance(exc, Terminated)
        context.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    context.exit(status)


def _drill(
    err: Console,
    out: Console,
    *,
    rig_options: RigOptions,
    options: DrillOptions,
    json_path: Path | None,
    plot_path: Path | None,
) -> int:
    """Set up, run, report; return the exit status."""
    with Rig(
        rig_options,
        say=lambda line: err.print(f"[dim]{escape(line)}[/]", soft_wrap=True),
    ) as rig:
        err.print(f"[dim]ready: {escape(rig.description)}[/]")
        progress = Progress(options)
        if err.is_terminal:
            with Live(
                LiveView(progress),
                console=err,
                refresh_per_second=8,
                transient=True,
            ):
                figures = run(rig, options, progress)
        else:
            figures = run(rig, options, progress, on_step=_printer(err))

    out.print(report(figures))
    try:
        if json_path is not None:
            document = {"rotsafe_version": _version(), **figures.to_json()}
            json_path.write_text(json.dumps(document, indent=2) + "\n")
            err.print(f"[dim]figures written to {escape(str(json_path))}[/]")
        if plot_path is not None:
            plot(figures, plot_path)
            err.print(f"[dim]timeline drawn to {escape(str(plot_path))}[/]")
    except OSError as exc:
        err.print(
            f"[bold red]rotsafe drill: cannot write the output:[/] "
            f"{escape(str(exc))}",
            soft_wrap=True,
        )
        return EXIT_SETUP
    return figures.exit_status


def _check_database(
    context: click.Context, database: str, admin_url: str | None
) -> None:
    """Refuse an admin URL that contradicts an explicit --database."""
    if admin_url is None:
        return
    try:
        family = family_of(admin_url)
    except AdminURLError as exc:
        raise click.BadParameter(str(exc), param_hint="--admin-url") from None
    source = context.get_parameter_source("database")
    if (
        source is click.core.ParameterSource.COMMANDLINE
        and _DATABASES[database] != family
    ):
        msg = f"--database {database} contradicts a {family} admin URL"
        raise click.UsageError(msg)


def _check_region(region: str, secrets_endpoint: str | None) -> None:
    """Refuse a region the local Secrets Manager (moto) does not serve.

    An endpoint given with --secrets-endpoint judges its own regions.
    """
    if secrets_endpoint is None and not serves_region(region):
        msg = (
            f"{region!r} is not an AWS region the local Secrets Manager "
            "(moto) serves; give one such as us-east-1, or a "
            "--secrets-endpoint that serves it"
        )
        raise click.BadParameter(msg, param_hint="'--region'")


def _printer(err: Console) -> Any:
    def say(step: StepTime) -> None:
        err.print(
            f"[dim]{escape(describe_step(step))}[/]",
            highlight=False,
            soft_wrap=True,
        )

    return say


def _version() -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version("rotsafe")


@contextlib.contextmanager
def _logging(err: Console, verbose: bool) -> Iterator[None]:
    """Keep log records off the display, or show rotsafe's with -v.

    moto's web server logs every request through werkzeug; that is
    silenced too. Everything is put back on the way out.
    """
    root = logging.getLogger()
    ours = logging.getLogger("rotsafe")
    werkzeug = logging.getLogger("werkzeug")
    saved = (ours.level, werkzeug.level)
    handler: logging.Handler = (
        RichHandler(console=err, show_path=False)
        if verbose
        else logging.NullHandler()
    )
    root.addHandler(handler)
    werkzeug.setLevel(logging.WARNING)
    if verbose:
        ours.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        ours.setLevel(saved[0])
        werkzeug.setLevel(saved[1])


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Treat SIGTERM as Ctrl-C, so everything is cleaned up either way."""

    def interrupt(number: int, frame: FrameType | None) -> None:
        raise Terminated

    try:
        saved = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)
