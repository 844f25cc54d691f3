"""Specifications for ``rotsafe drill``: real rotations, figures, clean-up.

The drills here are short (a 1 s window, 5 s of load) so the file runs in
a minute or two; the default run is measured by hand for the README.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result
from matplotlib import pyplot
from matplotlib.text import Text
from rich.console import Console

from rotsafe._drill import _command, _plot, _rig, _run
from rotsafe._drill._command import cli
from rotsafe._drill._figures import (
    DrillFigures,
    StepTime,
    recovery,
    service_figures,
    slice_for,
)
from rotsafe._drill._render import _legend, _markers, heading, notes
from rotsafe._drill._services import EngineOptions, Service, baseline_service
from rotsafe.testing import Operation, SecretsManagerServer
from rotsafe.testing._moto import serves_region
from rotsafe.testing._rotation import STRATEGIES, new_password
from rotsafe.testing._servers import MariaDBServer, PostgresServer
from support import processes_using, signal_when_ready

SHORT = ["--window", "1", "--duration", "5"]

# Strategies under which a service that keeps its first login fails: the
# password of the user it logs in as changes (under alternating-users, in
# the drill's second rotation).
NAIVE_FAILS = {
    "single-user": True,
    "rollback": True,
    "out-of-band": True,
    "alternating-users": True,
}

# Each table row of the report and the JSON field it shows.
ROWS = {
    "operations": "operations",
    "failed": "failed",
    "error rate": "error_rate",
    "latency p50": "latency_p50_seconds",
    "latency p99": "latency_p99_seconds",
    "latency max": "latency_max_seconds",
    "Secrets Manager calls": "secrets_manager_calls",
    "recovered after": "recovery_seconds",
}


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the drill makes, recorded as it makes them."""
    made: list[str] = []

    def recording() -> str:
        # Quotes, percent signs and colons break a driver or URL that
        # mangles passwords.
        password = "p%:'@" + new_password()
        made.append(password)
        return password

    monkeypatch.setattr(_rig, "new_password", recording)
    return made


@pytest.fixture
def drill(
    tmp_path: Path, passwords: list[str]
) -> Callable[..., tuple[Result, dict[str, Any]]]:
    """Run ``rotsafe drill`` in-process; return its result and its JSON."""

    def run(*arguments: str) -> tuple[Result, dict[str, Any]]:
        output = tmp_path / f"drill-{len(list(tmp_path.iterdir()))}.json"
        result = CliRunner().invoke(
            cli, ["drill", *arguments, "--json", str(output)]
        )
        assert result.exit_code in (0, 1), result.output
        text = output.read_text()
        for password in passwords:
            assert password not in text
            assert password not in result.output
        return result, json.loads(text)

    return run


def _admin_url(server: MariaDBServer | PostgresServer) -> str:
    """Return a SQLAlchemy URL of a throwaway server's admin account."""
    scheme = "mysql" if server.family == "mysql" else "postgresql"
    database = "" if server.family == "mysql" else "postgres"
    return (
        f"{scheme}://{server.admin_user}:{server.admin_password}@"
        f"{server.host}:{server.port}/{database}"
    )


def _printed(stdout: str) -> dict[str, list[str]]:
    """Return the report table's cells by row label."""
    cells = {}
    table = stdout.split("timeline:", maxsplit=1)[0]
    for line in table.splitlines():
        for label in ROWS:
            if line.startswith(label + " "):
                values = re.split(r"\s{2,}", line[len(label) :].strip())
                if label == "recovered after":
                    values = values[1:]
                cells[label] = values
    return cells


def _number(cell: str) -> float | None:
    """Read a printed figure back in the JSON's units (seconds, ratios)."""
    if cell == "never":
        return None
    value, _, unit = cell.partition(" ")
    number = float(value.replace(",", ""))
    return {"ms": number / 1000, "%": number / 100}.get(unit, number)


def _assert_table_matches(stdout: str, figures: dict[str, Any]) -> None:
    """Assert that every printed figure is the JSON's, rounded."""
    cells = _printed(stdout)
    assert set(cells) == set(ROWS), stdout
    services = {each["name"]: each for each in figures["services"]}
    for label, field in ROWS.items():
        for cell, name in zip(
            cells[label], ("baseline", "rotsafe"), strict=True
        ):
            shown = _number(cell)
            value = services[name][field]
            if value is None or shown is None:
                assert shown == value, (label, name)
            else:
                assert shown == pytest.approx(value, abs=0.0051), (label, name)


def _assert_drilled(
    result: Result, figures: dict[str, Any], strategy: str
) -> None:
    """Assert what any drill of ``strategy`` must show."""
    services = {each["name"]: each for each in figures["services"]}
    baseline, protected = services["baseline"], services["rotsafe"]

    assert result.exit_code == 0, result.output
    assert figures["exit_status"] == 0
    assert figures["strategy"] == strategy
    assert protected["failed"] == 0
    assert protected["operations"] > 0
    assert protected["recovery_seconds"] == 0
    if NAIVE_FAILS[strategy]:
        assert baseline["failed"] > 0
        assert baseline["errors"]["AUTH"] > 0
    else:
        assert baseline["failed"] == 0
    if figures["baseline"] == "read-once":
        assert baseline["secrets_manager_calls"] == 1
    assert [step["name"] for step in figures["steps"]]
    _assert_table_matches(result.stdout, figures)


@pytest.mark.parametrize("strategy", sorted(NAIVE_FAILS))
def test_drill_on_embedded_postgres(drill: Any, strategy: str):
    """Each strategy on the embedded PostgreSQL: rotsafe sees no failure."""
    result, figures = drill("--strategy", strategy, *SHORT)

    _assert_drilled(result, figures, strategy)
    assert figures["database"].startswith("embedded PostgreSQL")


@pytest.mark.parametrize("strategy", sorted(NAIVE_FAILS))
def test_drill_on_mariadb_through_an_admin_url(
    drill: Any, rotsafe_mariadb: MariaDBServer, strategy: str
):
    """Each strategy on MariaDB through --admin-url; nothing is left."""
    url = _admin_url(rotsafe_mariadb)

    result, figures = drill("--admin-url", url, "--strategy", strategy, *SHORT)

    _assert_drilled(result, figures, strategy)
    assert figures["database"].startswith(("MariaDB", "MySQL"))
    connection = rotsafe_mariadb.admin_connect()
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT user FROM mysql.user WHERE user LIKE 'rotsafe\\_drill%'"
        )
        assert cursor.fetchall() == ()
        cursor.execute("SHOW DATABASES LIKE 'rotsafe\\_drill%'")
        assert cursor.fetchall() == ()
    finally:
        connection.close()


def test_drill_on_postgres_through_an_admin_url(
    drill: Any, rotsafe_postgres: PostgresServer
):
    """An existing PostgreSQL keeps no role or database of the drill."""
    url = _admin_url(rotsafe_postgres)

    result, figures = drill("--admin-url", url, "--pool", "null", *SHORT)

    _assert_drilled(result, figures, "single-user")
    assert figures["pool"] == "null"
    with rotsafe_postgres.admin_connect("postgres") as connection:
        left = connection.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'rotsafe_drill%'"
            " UNION ALL SELECT datname FROM pg_database"
            " WHERE datname LIKE 'rotsafe_drill%'"
        ).fetchall()
    assert left == []


def test_drill_against_another_secrets_manager_endpoint(
    drill: Any,
    rotsafe_secrets_manager: SecretsManagerServer,
    monkeypatch: pytest.MonkeyPatch,
):
    """--secrets-endpoint rotates a secret there and deletes it afterwards."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = rotsafe_secrets_manager.endpoint_url

    result, figures = drill("--secrets-endpoint", endpoint, *SHORT)

    _assert_drilled(result, figures, "single-user")
    assert f"using Secrets Manager at {endpoint}" in result.stderr
    names = [
        each["Name"]
        for each in rotsafe_secrets_manager.client().list_secrets()[
            "SecretList"
        ]
    ]
    assert not [name for name in names if name.startswith("rotsafe-drill/")]


def test_drill_starts_a_throwaway_mariadb(drill: Any):
    """--database mysql starts MariaDB from the binaries on PATH."""
    result, figures = drill("--database", "mysql", *SHORT)

    _assert_drilled(result, figures, "single-user")
    assert figures["database"].startswith("throwaway")


def test_rereading_baseline_recovers_at_finish_secret(
    drill: Any, tmp_path: Path
):
    """A baseline re-reading AWSCURRENT fails until finishSecret, calling
    Secrets Manager on every refusal; the plot is drawn as a PNG."""
    picture = tmp_path / "timeline.png"

    result, figures = drill(
        "--baseline", "reread-current", "--plot", str(picture), *SHORT
    )

    _assert_drilled(result, figures, "single-user")
    baseline = figures["services"][0]
    finish = next(s for s in figures["steps"] if s["name"] == "finishSecret")
    change = next(s for s in figures["steps"] if s["name"] == "setSecret")
    assert baseline["secrets_manager_calls"] > baseline["failed"]
    assert baseline["recovery_seconds"] is not None
    assert (
        baseline["recovery_seconds"]
        >= finish["at_seconds"] - change["at_seconds"] - 0.1
    )
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_failures_of_the_rotsafe_service_exit_1(
    drill: Any, monkeypatch: pytest.MonkeyPatch
):
    """When the service in rotsafe's place fails, the drill exits 1."""

    def naive(rig: _rig.Rig, pooling: EngineOptions) -> Service:
        service = baseline_service(rig, pooling, "read-once")
        return dataclasses.replace(service, name="rotsafe")

    monkeypatch.setattr(_run, "rotsafe_service", naive)

    result, figures = drill(*SHORT)

    assert result.exit_code == 1
    assert figures["exit_status"] == 1
    assert figures["services"][1]["failed"] > 0
    assert "exit status 1" in result.stdout


def test_unreachable_admin_url_is_a_setup_error():
    """A server that cannot be reached exits 2 with a message, no traceback."""
    url = "postgresql://admin:do-not-print-me@127.0.0.1:9/postgres"

    result = CliRunner().invoke(cli, ["drill", "--admin-url", url])

    assert result.exit_code == 2
    assert "cannot set up" in result.stderr
    assert "Traceback" not in result.output
    assert "do-not-print-me" not in result.output


def test_missing_mariadb_binaries_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
):
    """Without MariaDB's binaries, --database mysql names the package."""
    monkeypatch.setattr(MariaDBServer, "_find_binaries", _no_binaries)

    result = CliRunner().invoke(cli, ["drill", "--database", "mysql"])

    assert result.exit_code == 2
    assert "mariadb-server" in result.stderr


def _no_binaries(self: MariaDBServer) -> None:
    from rotsafe.testing import ServerUnavailable  # noqa: PLC0415

    raise ServerUnavailable(
        "MariaDB server binaries were not found; install them, on Debian "
        "or Ubuntu with 'apt-get install mariadb-server'."
    )


def test_plot_without_matplotlib_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """--plot without matplotlib exits 2 before anything starts."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    result = CliRunner().invoke(
        cli, ["drill", "--plot", str(tmp_path / "drill.png")]
    )

    assert result.exit_code == 2
    assert "pip install 'rotsafe[plot]'" in result.stderr
    assert "starting" not in result.stderr


def test_admin_url_of_another_database_is_a_usage_error():
    """An admin URL naming neither family is refused before anything runs."""
    result = CliRunner().invoke(
        cli, ["drill", "--admin-url", "sqlite:///tmp/x.db"]
    )

    assert result.exit_code == 2
    assert "postgresql://" in result.output


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--window", "nan"], "finite"),
        (["--window", "inf"], "finite"),
        (["--duration", "nan"], "finite"),
        (["--recycle", "nan"], "finite"),
        (["--duration", "5s"], "'5s' is not a valid number of seconds."),
        (["--json", "/nonexistent/folder/out.json"], "does not exist"),
        (["--plot", "/nonexistent/folder/out.png"], "does not exist"),
        (["--secrets-endpoint", "not-a-url"], "https://"),
        (["--region", ""], "'' is not a region name"),
        (["--region", "us east"], "'us east' is not a region name"),
        (
            ["--region", "bogus-region-1"],
            "'bogus-region-1' is not an AWS region the local Secrets Manager",
        ),
    ],
    ids=[
        "window-nan",
        "window-inf",
        "duration-nan",
        "recycle-nan",
        "duration-unit",
        "json-folder",
        "plot-folder",
        "endpoint",
        "region-empty",
        "region-spaces",
        "region-unknown",
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    arguments: list[str], complaint: str
):
    """Each bad option exits 2 naming the problem, with nothing started."""
    result = CliRunner().invoke(cli, ["drill", *arguments])

    assert result.exit_code == 2, result.output
    assert complaint in result.output
    assert "starting" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "region", ["eu-west-1", "cn-north-1", "us-gov-west-1", "bogus-region-1"]
)
def test_the_drill_accepts_the_regions_moto_serves(
    rotsafe_secrets_manager: SecretsManagerServer, region: str
):
    """The drill takes a region for moto exactly when moto answers in it."""
    client = rotsafe_secrets_manager.client(
        region_name=region, config=Config(retries={"total_max_attempts": 1})
    )
    try:
        client.list_secrets()
    except ClientError:
        answered = False
    else:
        answered = True

    assert serves_region(region) == answered


def test_help_names_every_exit_status():
    """--help says what exit statuses 0, 1, 2, 130 and 143 mean."""
    result = CliRunner().invoke(cli, ["drill", "--help"])

    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for meaning in (
        "Exit status 0 when",
        "1 when it did",
        "2 when an option is wrong",
        "130 when interrupted with Ctrl-C",
        "143 when terminated",
    ):
        assert meaning in text


@pytest.mark.parametrize(
    ("number", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupt_removes_servers_and_folders(
    scratch: Path, number: signal.Signals, status: int
):
    """Ctrl-C or SIGTERM mid-rotation leaves no server process or folder."""
    command = [
        sys.executable,
        "-c",
        "from rotsafe._cli import main; main()",
        "drill",
        "--window",
        "20",
        "--duration",
        "30",
    ]
    exited, rest = signal_when_ready(command, "setSecret", number, scratch)

    assert exited == status, rest
    assert "interrupted" in rest
    assert "Traceback" not in rest
    assert not processes_using(scratch)
    assert list(scratch.iterdir()) == []


def test_ctrl_c_while_the_command_loads_is_a_short_interruption():
    """Ctrl-C while the drill's modules load exits 130 with the drill's
    message and no traceback."""
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'rotsafe._drill._command':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['rotsafe', 'drill']\n"
        "from rotsafe._cli import main\n"
        "main()\n"
    )
    done = _python(code)

    assert done.returncode == 130, done.stderr
    assert done.stderr == (
        "rotsafe drill: interrupted; what it made has been removed\n"
    )


def test_ctrl_c_while_the_options_are_checked_exits_130(
    monkeypatch: pytest.MonkeyPatch,
):
    """Ctrl-C before the drill starts anything exits 130, as later on."""

    def interrupted(region: str) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(_command, "serves_region", interrupted)

    result = CliRunner().invoke(cli, ["drill"])

    assert result.exit_code == 130, result.output
    assert "interrupted" in result.stderr
    assert "starting" not in result.stderr


def test_command_without_the_drill_extra_says_what_to_install():
    """With click missing, the rotsafe command exits 2 naming the extra."""
    code = (
        "import sys\n"
        "sys.modules['click'] = None\n"
        "sys.argv = ['rotsafe', 'drill']\n"
        "from rotsafe._cli import main\n"
        "main()\n"
    )
    done = _python(code)

    assert done.returncode == 2
    assert "pip install 'rotsafe[drill]'" in done.stderr


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter; return what it did."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )


def _operation(started: float, seconds: float, failed: bool) -> Operation:
    """Return a recorded operation, failed or not."""
    return Operation(
        started, seconds, "OperationalError: x" if failed else None
    )


def test_recovery_runs_to_the_first_success_after_the_last_failure():
    """Recovery ends with the first success that began after the last
    failure, and is counted from the password change."""
    operations = [
        _operation(1.0, 0.1, failed=False),
        _operation(2.0, 0.1, failed=True),
        _operation(2.5, 0.2, failed=False),
        _operation(3.0, 0.1, failed=True),
        _operation(3.5, 0.25, failed=False),
        _operation(4.0, 0.1, failed=False),
    ]

    assert recovery(operations, change_at=2.0) == pytest.approx(1.75)


def test_recovery_is_zero_without_failures_and_none_without_recovering():
    """No failure means 0; failures to the end mean it never recovered."""
    fine = [_operation(1.0, 0.1, failed=False)]
    broken = [*fine, _operation(2.0, 0.1, failed=True)]

    assert recovery(fine, change_at=0.5) == 0
    assert recovery(broken, change_at=0.5) is None


def test_timeline_slices_fit_the_terminal():
    """Slices are round widths that keep a run within 60 columns."""
    assert slice_for(4.0) == 0.1
    assert slice_for(15.0) == 0.25
    assert slice_for(60.0) == 1.0


def test_the_legend_says_where_a_hidden_step_is():
    """Steps sharing a column show one letter; the legend names the other."""
    steps = [
        StepTime("createSecret", 2.01),
        StepTime("setSecret", 2.05),
        StepTime("testSecret", 2.08),
        StepTime("finishSecret", 2.12),
    ]
    marks = _markers(steps, columns=20, width=0.25)

    assert marks.strip("·") == "F"
    legend = _legend(steps, marks, width=0.25).splitlines()
    assert legend[1].endswith(
        "S = setSecret at 2.05 s (in the column marked F)"
    )
    assert legend[3].endswith("F = finishSecret at 2.12 s")


def _figures(
    strategy: str = "single-user",
    database: str = "embedded PostgreSQL 16.2",
    window: float = 5.0,
    steps: Sequence[StepTime] = (),
) -> DrillFigures:
    """Return the figures of a 10 s drill in which nothing failed."""
    operations = [_operation(n / 10, 0.01, failed=False) for n in range(100)]
    services = [
        service_figures(
            name,
            name,
            operations,
            calls=1,
            change_at=None,
            slice_seconds=0.25,
            duration=10.0,
        )
        for name in ("baseline", "rotsafe")
    ]
    return DrillFigures(
        database=database,
        strategy=strategy,
        window_seconds=window,
        duration_seconds=10.0,
        threads=4,
        pool="queue",
        recycle_seconds=1.0,
        baseline="read-once",
        change_step=_rig.CHANGE_STEP[strategy],
        steps=list(steps),
        slice_seconds=0.25,
        services=services,
        exit_status=0,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_title_fits_in_80_columns(strategy: str):
    """The report's title is one line of 80 columns, as in a pipe or file."""
    figures = _figures(strategy, "throwaway MariaDB 10.11.14", window=12.5)
    output = io.StringIO()

    Console(file=output, width=80).print(heading(figures))

    assert output.getvalue().count("\n") == 1, output.getvalue()


def test_the_rollback_notes_claim_no_new_password():
    """A rollback's notes count recovery from restorePassword, which gives
    the database its previous password, not a new one."""
    text = " ".join(notes(_figures("rollback")).plain.split())
    measured = "from restorePassword, when the database's password changed"

    assert measured in text
    assert "new password" not in text


def test_the_plot_names_every_step_apart_and_inside():
    """Steps close together and one near the end are named above the plot,
    no name overlapping another, a leader, the title or an edge."""
    steps = [
        StepTime("createSecret", 2.01),
        StepTime("setSecret", 2.03),
        StepTime("testSecret", 2.05),
        StepTime("finishSecret", 2.55),
        StepTime("createSecret", 3.56),
        StepTime("setSecret", 3.58),
        StepTime("testSecret", 3.6),
        StepTime("finishSecret", 9.9),
    ]
    fig = _plot.draw(_figures("alternating-users", window=0.5, steps=steps))
    try:
        fig.draw_without_rendering()
        axes = fig.axes[0]
        plotted = axes.get_window_extent()
        title = fig.texts[0].get_window_extent()
        labels = sorted(axes.texts, key=lambda label: label.xy[0])
        # The names alone, without the leaders down to their lines.
        boxes = [Text.get_window_extent(label) for label in labels]
        leaders = [axes.transData.transform(label.xy)[0] for label in labels]
    finally:
        pyplot.close(fig)

    named = ", ".join(label.get_text() for label in labels).split(", ")
    assert named == [step.name for step in steps]
    for number, (box, leader) in enumerate(zip(boxes, leaders, strict=True)):
        assert plotted.x0 <= box.x0
        assert box.x1 <= plotted.x1
        assert plotted.y1 < box.y0
        assert not box.overlaps(title)
        assert not any(box.overlaps(other) for other in boxes[number + 1 :])
        below = [other for other in boxes if other.y1 < box.y0]
        assert not any(other.x0 < leader < other.x1 for other in below)
