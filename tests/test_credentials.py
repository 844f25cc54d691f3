"""Secret values as deployments write them, turned into credentials."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

import rotsafe
from rotsafe._sources import version_from_response
from rotsafe.testing import ManualClock, MemorySource
from support import locals_of

CASES_DIR = Path(__file__).parent / "cases"
SHARED_CASES_DIR = Path(__file__).parents[2] / "shared" / "cases"
CASES = json.loads((CASES_DIR / "secret-shapes.json").read_text())["cases"]
SECRET_ID = "prod/app/db"
LOGIN = {"username": "app_user", "password": "pw-v1"}
LOGIN_NO_PASSWORD = {"username": "app_user"}
BASE = {"engine": "mysql", "host": "h", **LOGIN}


class ResponseSource:
    """Answers with one raw GetSecretValue response, as boto3 returns it."""

    def __init__(self, response: dict[str, object]) -> None:
        self.response = response

    def get(self, secret_id: str, stage: str) -> rotsafe.SecretVersion:
        return version_from_response(secret_id, self.response)


def response_for(case: dict[str, object]) -> dict[str, object]:
    if case.get("response_without_value"):
        return {"VersionId": "v1", "Name": SECRET_ID}
    if "binary" in case:
        raw = str(case["binary"]).encode()
        return {"VersionId": "v1", "SecretBinary": raw}
    if "secret_string" in case:
        return {"VersionId": "v1", "SecretString": case["secret_string"]}
    return {"VersionId": "v1", "SecretString": json.dumps(case["secret"])}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_secret_shapes_from_the_field(case):
    """Each real-world secret shape gives the expected credentials or error."""
    given = case.get("given", {})
    secret = rotsafe.RotatingSecret(
        SECRET_ID,
        source=ResponseSource(response_for(case)),
        clock=ManualClock(),
        **given,
    )
    expect = case["expect"]

    if "error" in expect:
        error_class = getattr(rotsafe, expect["error"])
        with pytest.raises(error_class) as caught:
            secret.credentials()
        message = str(caught.value)
        assert SECRET_ID in message
        assert "pw-v1" not in message
        if "field" in expect:
            assert caught.value.field == expect["field"]
            assert expect["field"] in message
        assert caught.value.__cause__ is None, "a cause could carry the value"
        return

    credentials = secret.credentials()
    if expect.get("password_reaches_driver_unchanged"):
        assert credentials.password == case["secret"]["password"]
    for field, wanted in expect.items():
        if field == "password_reaches_driver_unchanged":
            continue
        assert getattr(credentials, field) == wanted, field


@pytest.mark.parametrize(
    ("engine", "family"),
    [
        ("mysql", "mysql"),
        ("mariadb", "mysql"),
        ("aurora", "mysql"),
        ("aurora-mysql", "mysql"),
        ("postgres", "postgresql"),
        ("postgresql", "postgresql"),
        ("aurora-postgresql", "postgresql"),
        ("MySQL", "mysql"),
    ],
)
def test_every_rds_engine_name_has_a_family(engine, family):
    """The engine names the RDS templates write map to their family."""
    credentials = read({"engine": engine, "host": "h", **LOGIN})
    assert credentials.family == family
    assert credentials.port == {"mysql": 3306, "postgresql": 5432}[family]


def test_dbname_or_database():
    """The database comes from dbname, or from database when that is used."""
    assert read({**BASE, "dbname": "a"}).database == "a"
    assert read({**BASE, "database": "b"}).database == "b"
    assert read(BASE).database is None


def test_given_fields_point_elsewhere():
    """Host, port and database given to RotatingSecret win over the secret."""
    credentials = read(
        {**BASE, "dbname": "app"},
        host="proxy.internal",
        port=6033,
        database="other",
    )
    assert (credentials.host, credentials.port, credentials.database) == (
        "proxy.internal",
        6033,
        "other",
    )


def test_driver_tells_the_family_of_an_engineless_secret():
    """Without an engine, the driver given says which family it is."""
    assert read({**LOGIN, "host": "h"}, driver="psycopg").port == 5432


@pytest.mark.parametrize(
    ("fields", "options", "field"),
    [
        (
            {**LOGIN_NO_PASSWORD, "engine": "mysql", "host": "h"},
            {},
            "password",
        ),
        (
            {"password": "pw-v1", "engine": "mysql", "host": "h"},
            {},
            "username",
        ),
        ({**LOGIN, "engine": "oracle", "host": "h"}, {}, "engine"),
        ({**LOGIN, "host": "h"}, {}, "engine"),
        (
            {**LOGIN, "engine": "postgres", "host": "h"},
            {"driver": "pymysql"},
            "engine",
        ),
        ({**LOGIN, "engine": "mysql", "host": "h", "port": 70000}, {}, "port"),
        ({**LOGIN, "engine": "mysql", "host": "h", "port": True}, {}, "port"),
        ({**LOGIN, "engine": "mysql", "host": ""}, {}, "host"),
        (
            {**LOGIN, "engine": "mysql", "host": "h", "username": 7},
            {},
            "username",
        ),
    ],
)
def test_malformed_fields_are_named(fields, options, field):
    """Each malformed field gets a SecretFormatError naming it, no value."""
    with pytest.raises(rotsafe.SecretFormatError) as caught:
        read(fields, **options)
    assert caught.value.field == field
    assert "pw-v1" not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "remedy"),
    [
        ({**LOGIN, "engine": "mysql"}, "pass host= to RotatingSecret"),
        ({**BASE, "port": "x"}, "pass port= to RotatingSecret"),
        ({**BASE, "engine": "oracle"}, "pass driver= to RotatingSecret"),
        (LOGIN_NO_PASSWORD | {"engine": "mysql", "host": "h"}, None),
    ],
)
def test_the_remedy_fits_the_field(fields, remedy):
    """Only a field that RotatingSecret can supply is offered as a remedy."""
    with pytest.raises(rotsafe.SecretFormatError) as caught:
        read(fields)
    message = str(caught.value)
    assert "Fix the secret's value in Secrets Manager" in message
    if remedy is None:
        assert "RotatingSecret" not in message
    else:
        assert message.count(remedy) == 1


@pytest.mark.parametrize("password", ["   ", " pw-v1\t", "\u00e9t\u00e9 "])
def test_a_password_is_kept_byte_for_byte(password):
    """Spaces are part of a password: nothing is stripped or refused."""
    assert read({**BASE, "password": password}).password == password


def test_an_empty_password_is_refused():
    """An empty password is a malformed secret, not a login to try."""
    with pytest.raises(rotsafe.SecretFormatError) as caught:
        read({**BASE, "password": ""})
    assert caught.value.field == "password"


def test_a_byte_order_mark_is_ignored():
    """A value saved with a UTF-8 byte order mark still reads."""
    raw = "\ufeff" + json.dumps({**BASE, "port": 3306})
    for response in (
        {"VersionId": "v1", "SecretString": raw},
        {"VersionId": "v1", "SecretBinary": raw.encode()},
    ):
        secret = rotsafe.RotatingSecret(
            SECRET_ID, source=ResponseSource(response)
        )
        assert secret.credentials().username == "app_user"


def test_deep_nesting_is_a_format_error():
    """A value nested past the parser's depth is refused like bad JSON."""
    raw = "[" * 100_000 + "]" * 100_000
    secret = rotsafe.RotatingSecret(
        SECRET_ID,
        source=ResponseSource({"VersionId": "v", "SecretString": raw}),
    )
    with pytest.raises(rotsafe.SecretFormatError):
        secret.credentials()


def test_errors_name_the_stage_and_version():
    """A malformed version is named by its stage and version id."""
    source = MemorySource(BASE)
    version = source.put({**BASE, "port": "abc"}, stages=["AWSPENDING"])
    secret = rotsafe.RotatingSecret(SECRET_ID, source=source)

    with pytest.raises(rotsafe.SecretFormatError) as caught:
        secret.stage("AWSPENDING")
    assert "AWSPENDING" in str(caught.value)
    assert version in str(caught.value)
    assert caught.value.stage == "AWSPENDING"


def test_binary_secret_that_is_not_utf8():
    """A SecretBinary that is not text is refused, naming SecretBinary."""
    secret = rotsafe.RotatingSecret(
        SECRET_ID,
        source=ResponseSource(
            {"VersionId": "v1", "SecretBinary": b"\xff\xfe"}
        ),
    )
    with pytest.raises(rotsafe.SecretFormatError) as caught:
        secret.credentials()
    assert caught.value.field == "SecretBinary"
    assert caught.value.__context__ is None, "the decode error holds it all"


def test_json_that_is_not_an_object():
    """A JSON array or number is refused like any non-object value."""
    for raw in ('["pw-v1"]', "12345", '"pw-v1"'):
        source = ResponseSource({"VersionId": "v1", "SecretString": raw})
        secret = rotsafe.RotatingSecret(SECRET_ID, source=source)
        with pytest.raises(rotsafe.SecretFormatError) as caught:
            secret.credentials()
        assert "pw-v1" not in str(caught.value)


SENTINEL = "sentinel-Pw-9b2e"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(SENTINEL, id="a plain password"),
        pytest.param(f'{{"username": "u", "password": "{SENTINEL}"', id="cut"),
        pytest.param(
            json.dumps({**BASE, "password": SENTINEL, "port": "x"}),
            id="a bad port",
        ),
        pytest.param(json.dumps([SENTINEL]), id="a list"),
        pytest.param(
            json.dumps({"username": "u", "password": SENTINEL}),
            id="no host",
        ),
    ],
)
def test_no_frame_of_a_format_error_holds_the_value(raw):
    """An error reporter recording locals finds no secret value in them."""
    secret = rotsafe.RotatingSecret(
        SECRET_ID,
        source=ResponseSource({"VersionId": "v1", "SecretString": raw}),
    )
    with pytest.raises(rotsafe.SecretFormatError) as caught:
        secret.credentials()

    held = locals_of(caught.value)
    assert "secret_id" in held, "the frames were walked"
    assert SENTINEL not in held
    assert SENTINEL not in "".join(traceback.format_exception(caught.value))


@pytest.mark.skipif(
    not SHARED_CASES_DIR.is_dir(), reason="the shared cases are not beside"
)
def test_the_copied_cases_are_current():
    """tests/cases holds the same field cases as the shared folder."""
    for shared in SHARED_CASES_DIR.iterdir():
        copy = CASES_DIR / shared.name
        assert copy.is_file(), f"copy {shared.name} into tests/cases"
        assert copy.read_text() == shared.read_text(), shared.name


def read(fields: dict[str, object], **options: object) -> rotsafe.Credentials:
    secret = rotsafe.RotatingSecret(
        SECRET_ID, source=MemorySource(fields), **options
    )
    return secret.credentials()
