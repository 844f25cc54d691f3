"""RotationHarness: a login in a secret, with a database of its own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotsafe.testing import RotationHarness


def execute(rig: RotationHarness, statement: str) -> list[tuple[Any, ...]]:
    """Run one statement with the login the secret holds now."""
    value = json.loads(
        rig.client.get_secret_value(SecretId=rig.secret_id)["SecretString"]
    )
    connection = rig.server.connect(
        value["username"], value["password"], database=value["dbname"]
    )
    try:
        cursor = connection.cursor()
        cursor.execute(statement)
        rows = list(cursor.fetchall()) if cursor.description else []
        cursor.close()
        connection.commit()
        return rows
    finally:
        connection.close()


def test_each_harness_starts_from_an_empty_database(
    rotsafe_database, rotsafe_secrets_manager
):
    """Tables one harness made are gone, and never in the next one's way."""
    with RotationHarness(rotsafe_database, rotsafe_secrets_manager) as first:
        execute(first, "CREATE TABLE visits (path VARCHAR(20))")
        execute(first, "INSERT INTO visits VALUES ('home')")

    with RotationHarness(rotsafe_database, rotsafe_secrets_manager) as second:
        assert second.database != first.database
        execute(second, "CREATE TABLE visits (path VARCHAR(20))")
        assert execute(second, "SELECT COUNT(*) FROM visits") == [(0,)]

    with pytest.raises(Exception, match=first.database):
        rotsafe_database.connect(
            rotsafe_database.admin_user,
            rotsafe_database.admin_password,
            database=first.database,
        ).close()


def test_the_second_user_shares_the_first_ones_tables(
    rotsafe_database, rotsafe_secrets_manager
):
    """After switching users, the service still reads what it made before."""
    with RotationHarness(rotsafe_database, rotsafe_secrets_manager) as rig:
        execute(rig, "CREATE TABLE visits (path VARCHAR(20))")
        execute(rig, "INSERT INTO visits VALUES ('home')")

        rig.rotate("alternating-users", window=0)

        secret = rig.secret()
        assert secret.credentials().username == rig.clone
        execute(rig, "INSERT INTO visits VALUES ('away')")
        assert execute(rig, "SELECT COUNT(*) FROM visits") == [(2,)]


def test_a_rollback_needs_a_rotation_first(
    rotsafe_database, rotsafe_secrets_manager
):
    """Rolling back a secret that never rotated says what to do first."""
    with (
        RotationHarness(rotsafe_database, rotsafe_secrets_manager) as rig,
        pytest.raises(ValueError, match="rotate it once first"),
    ):
        rig.rotate("rollback", window=0)


def test_a_harness_that_cannot_be_made_leaves_nothing(
    rotsafe_database, rotsafe_secrets_manager, monkeypatch
):
    """If making the secret fails, the database and users are removed."""
    server = rotsafe_database
    rig = RotationHarness(server, rotsafe_secrets_manager)

    def refuse(**_: object) -> None:
        raise RuntimeError("no secrets today")

    monkeypatch.setattr(rig._admin_client, "create_secret", refuse)
    with pytest.raises(RuntimeError), rig:
        pass

    with pytest.raises(Exception, match=rig.database):
        server.connect(
            server.admin_user, server.admin_password, database=rig.database
        ).close()
    # Neither user is left: both names can be created again.
    for user in (rig.username, rig.clone):
        server.create_user(user, "pw")
        server.drop_user(user)
