"""A rotation driver: Secrets Manager's rotation steps, done on demand.

It performs the four documented steps (createSecret, setSecret, testSecret,
finishSecret) against any Secrets Manager endpoint and a database it can
administer, with a pause where a real rotation leaves its window open.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotsafe._sources import AWSCURRENT, AWSPENDING, AWSPREVIOUS

logger = logging.getLogger("rotsafe.testing.rotation")

# A label no reader asks for, for a version on its way to AWSCURRENT.
_STAGING_LABEL = "ROTSAFE_STAGING"

STRATEGIES = ("single-user", "alternating-users", "rollback", "out-of-band")

# Letters, digits and the punctuation AWS's templates allow by default, so a
# driver or URL that mangles passwords fails a drill.
_PASSWORD_ALPHABET = (
    string.ascii_letters + string.digits + "!#$%&()*+,-.:;<=>?[]^_{|}~"
)


class DatabaseAdmin(Protocol):
    """What the rotation driver needs from the database: the throwaway
    servers of :mod:`rotsafe.testing` provide it."""

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password; new logins need it at once."""
        ...

    def connect(
        self, user: str, password: str, *, database: str | None = None
    ) -> Any:
        """Open a connection as ``user``, raising if it is refused."""
        ...


@dataclass(frozen=True)
class Step:
    """One step of a rotation and when it finished.

    Attributes:
        name: ``createSecret``, ``setSecret``, ``testSecret``,
            ``finishSecret``, or for other strategies the action taken.
        at: When it finished, on the driver's clock.
    """

    name: str
    at: float


@dataclass
class RotationRecord:
    """What one rotation did, step by step.

    Attributes:
        strategy: The strategy that ran.
        steps: Each step, in order.
        version_id: The version the secret's ``AWSCURRENT`` holds after.
    """

    strategy: str
    steps: list[Step] = field(default_factory=list)
    version_id: str | None = None


def new_password(length: int = 24) -> str:
    """Return a random password of letters, digits and punctuation."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


class Rotator:
    """Rotates one secret's database password the way Secrets Manager does.

    Args:
        client: A boto3 ``secretsmanager`` client.
        secret_id: The secret to rotate. Its value holds at least
            ``username`` and ``password``.
        admin: Changes passwords in the database and checks logins.
        sleep: Waits out the pauses, for tests.
        clock: Stamps the steps.
        on_step: Called with each step as it finishes.
    """

    def __init__(
        self,
        client: Any,
        secret_id: str,
        admin: DatabaseAdmin,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_step: Callable[[Step], object] | None = None,
    ) -> None:
        self.client = client
        self.secret_id = secret_id
        self.admin = admin
        self._sleep = sleep
        self._clock = clock
        self.on_step = on_step

    def rotate(self, strategy: str, *, window: float = 2.0) -> RotationRecord:
        """Run the rotation ``strategy`` names.

        Args:
            strategy: One of ``single-user``, ``alternating-users``,
                ``rollback`` or ``out-of-band``.
            window: Seconds between the database change and the change of
                ``AWSCURRENT``.

        Raises:
            ValueError: The strategy is unknown.
        """
        actions: dict[str, Callable[..., RotationRecord]] = {
            "single-user": self.single_user,
            "alternating-users": self.alternating_users,
            "rollback": self.rollback,
            "out-of-band": self.out_of_band,
        }
        if strategy not in actions:
            msg = f"unknown strategy {strategy!r}; choose from {STRATEGIES}"
            raise ValueError(msg)
        return actions[strategy](window=window)

    def single_user(
        self, *, window: float = 2.0, password: str | None = None
    ) -> RotationRecord:
        """Rotate the password of the secret's own user.

        Between setSecret and finishSecret the old password is refused
        while ``AWSCURRENT`` still returns it: the window rotsafe exists for.
        """
        current, version_id = self._read(AWSCURRENT)
        pending = {**current, "password": password or new_password()}
        return self._four_steps("single-user", version_id, pending, window)

    def alternating_users(
        self,
        *,
        window: float = 2.0,
        password: str | None = None,
        clone_suffix: str = "_clone",
    ) -> RotationRecord:
        """Rotate to the other of two users, changing only its password.

        The secret alternates between ``user`` and ``user`` + clone_suffix;
        both must exist with the same grants. The user in use keeps its
        password, so nothing should fail even without rotsafe.
        """
        current, version_id = self._read(AWSCURRENT)
        user = current["username"]
        other = (
            user.removesuffix(clone_suffix)
            if user.endswith(clone_suffix)
            else user + clone_suffix
        )
        pending = {
            **current,
            "username": other,
            "password": password or new_password(),
        }
        return self._four_steps(
            "alternating-users", version_id, pending, window
        )

    def rollback(self, *, window: float = 2.0) -> RotationRecord:
        """Undo the last rotation in an emergency.

        ``AWSCURRENT`` moves back to the ``AWSPREVIOUS`` version first, and
        the database gets its password back only after ``window``: in
        between, only ``AWSPREVIOUS`` holds the working password.

        Raises:
            ValueError: The secret has no ``AWSPREVIOUS`` version.
        """
        record = RotationRecord("rollback")
        _, current_id = self._read(AWSCURRENT)
        previous, previous_id = self._read(AWSPREVIOUS)

        self.client.update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage=AWSCURRENT,
            MoveToVersionId=previous_id,
            RemoveFromVersionId=current_id,
        )
        self._step(record, "moveCurrentBack")

        self._sleep(window)
        self.admin.set_password(previous["username"], previous["password"])
        self._step(record, "restorePassword")

        record.version_id = previous_id
        return record

    def out_of_band(
        self, *, window: float = 2.0, password: str | None = None
    ) -> RotationRecord:
        """Change the password by hand, then store it straight in AWSCURRENT.

        No ``AWSPENDING`` exists: for ``window`` seconds no stage holds the
        working password, and only polling ``AWSCURRENT`` finds it.
        """
        record = RotationRecord("out-of-band")
        current, current_id = self._read(AWSCURRENT)
        changed = {**current, "password": password or new_password()}

        self.admin.set_password(changed["username"], changed["password"])
        self._step(record, "setPassword")

        self._sleep(window)
        record.version_id = self._put_current(changed, current_id)
        self._step(record, "putCurrent")
        return record

    def _four_steps(
        self,
        strategy: str,
        current_id: str,
        pending: dict[str, Any],
        window: float,
    ) -> RotationRecord:
        record = RotationRecord(strategy)
        token = str(uuid.uuid4())

        self.client.put_secret_value(
            SecretId=self.secret_id,
            ClientRequestToken=token,
            SecretString=json.dumps(pending),
            VersionStages=[AWSPENDING],
        )
        self._step(record, "createSecret")

        self.admin.set_password(pending["username"], pending["password"])
        self._step(record, "setSecret")

        # As the rotation function does: log in to what the secret names.
        self.admin.connect(
            pending["username"],
            pending["password"],
            database=pending.get("dbname"),
        ).close()
        self._step(record, "testSecret")

        self._sleep(window)
        self._promote(token, current_id, AWSPENDING)
        self._step(record, "finishSecret")

        record.version_id = token
        return record

    def _put_current(self, value: dict[str, Any], current_id: str) -> str:
        """Store ``value`` as the new AWSCURRENT, as a plain put would.

        The new version goes in under a private label and then takes
        AWSCURRENT: a plain put after earlier label moves leaves two versions
        labelled AWSCURRENT in moto.
        """
        token = str(uuid.uuid4())
        self.client.put_secret_value(
            SecretId=self.secret_id,
            ClientRequestToken=token,
            SecretString=json.dumps(value),
            VersionStages=[_STAGING_LABEL],
        )
        self._promote(token, current_id, _STAGING_LABEL)
        return token

    def _promote(self, version_id: str, current_id: str, label: str) -> None:
        """Move AWSCURRENT to a version, and take its temporary label off."""
        self.client.update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage=AWSCURRENT,
            MoveToVersionId=version_id,
            RemoveFromVersionId=current_id,
        )
        self.client.update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage=label,
            RemoveFromVersionId=version_id,
        )

    def _read(self, stage: str) -> tuple[dict[str, Any], str]:
        try:
            response = self.client.get_secret_value(
                SecretId=self.secret_id, VersionStage=stage
            )
        except self.client.exceptions.ResourceNotFoundException:
            msg = f"secret {self.secret_id!r} has no {stage} version"
            if stage == AWSPREVIOUS:
                msg += (
                    ": a rollback goes back to the version before the last "
                    "rotation, so rotate it once first"
                )
            raise ValueError(msg) from None
        return json.loads(response["SecretString"]), response["VersionId"]

    def _step(self, record: RotationRecord, name: str) -> None:
        step = Step(name, self._clock())
        record.steps.append(step)
        logger.info("secret %s: rotation step %s", self.secret_id, name)
        if self.on_step is not None:
            self.on_step(step)
