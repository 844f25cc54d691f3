"""@retry_on_auth_error: run a database function again after a refused login.

Only errors that :func:`rotsafe.classify` calls ``AUTH`` are retried; every
other error propagates at once, untouched. Coroutine functions are retried
with ``asyncio.sleep`` and never block the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import tenacity
from sqlalchemy.engine import Engine

from rotsafe._classify import ErrorKind, verdict
from rotsafe._deadline import Deadline
from rotsafe._durations import Duration, to_seconds
from rotsafe._errors import CredentialsRejected, RotsafeError
from rotsafe._secret import RotatingSecret
from rotsafe._sqlalchemy import attachment_of, sync_engine_of
from rotsafe._waits import async_wait, waiter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("rotsafe.retry")

P = ParamSpec("P")
R = TypeVar("R")

# Retries come after up to 0.1, 0.2, 0.4 ... s (full jitter), at most 2 s.
_WAIT = tenacity.wait_random_exponential(multiplier=0.1, max=2)


def retry_on_auth_error(
    secret: RotatingSecret,
    *,
    engine: Engine | AsyncEngine | None = None,
    attempts: int = 3,
    deadline: Duration = 10.0,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry the decorated function when the database refuses its login.

    The whole function runs again, so it must be safe to repeat: a
    transaction that was rolled back, a read, an idempotent write. Before
    each retry the secret is refreshed (one shared call for all threads),
    and with ``engine=`` that engine's pooled connections made with an older
    login are marked for replacement, so the retry gets a new connection.
    Waits between attempts are jittered and exponential, bounded by
    ``attempts`` and ``deadline``.

    Works on functions, methods and coroutine functions; the wrapper keeps
    the signature and metadata. :class:`rotsafe.CredentialsRejected` is not
    retried: the connection layer has already tried until its own deadline.

    Args:
        secret: The secret whose login the function's connections use.
        engine: The engine to refresh connections of, if any.
        attempts: How many calls in all, the first included.
        deadline: How long after the first call a retry may still start;
            float seconds or ``timedelta``.

    Raises:
        TypeError: ``secret`` is not a :class:`rotsafe.RotatingSecret` (as
            when the decorator is used bare, without its arguments), or
            ``engine`` is not an engine.
        ValueError: ``attempts`` is not a whole number of at least 1.

    The decorated function raises its last error when it gives up, with a
    note saying how many attempts were made, and errors that are not
    ``AUTH`` at once.
    """
    if not isinstance(secret, RotatingSecret):
        msg = (
            "retry_on_auth_error takes the secret its function logs in "
            "with: decorate with @retry_on_auth_error(secret)"
        )
        raise TypeError(msg)
    if engine is not None and not isinstance(
        getattr(engine, "sync_engine", engine), Engine
    ):
        msg = f"engine must be a SQLAlchemy engine, not {type(engine)!r}"
        raise TypeError(msg)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        msg = f"attempts must be a whole number, not {attempts!r}"
        raise ValueError(msg)
    if attempts < 1:
        msg = "attempts must be at least 1"
        raise ValueError(msg)
    seconds = to_seconds(deadline, "deadline")

    def bounds() -> dict[str, Any]:
        until = Deadline(secret.clock, seconds)
        return {
            "stop": tenacity.stop_after_attempt(attempts) | until.stop(),
            "wait": until.wait(_WAIT),
            "retry": tenacity.retry_if_exception(_worth_retrying),
            "reraise": True,
        }

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = getattr(function, "__qualname__", repr(function))

        def prepare(state: tenacity.RetryCallState) -> None:
            _log_retry(secret, name, state)
            _refresh(secret, engine)

        if inspect.iscoroutinefunction(function):
            coroutine = cast(Callable[P, Awaitable[Any]], function)

            async def prepare_async(state: tenacity.RetryCallState) -> None:
                _log_retry(secret, name, state)
                await asyncio.to_thread(_refresh, secret, engine)

            @functools.wraps(function)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                retrying = tenacity.AsyncRetrying(
                    before_sleep=prepare_async, sleep=async_wait, **bounds()
                )
                try:
                    return await retrying(coroutine, *args, **kwargs)
                except BaseException as exc:
                    _give_up(secret, name, retrying, exc)
                    raise

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            retrying = tenacity.Retrying(
                before_sleep=prepare, sleep=waiter(secret.sleep), **bounds()
            )
            try:
                return retrying(function, *args, **kwargs)
            except BaseException as exc:
                _give_up(secret, name, retrying, exc)
                raise

        return wrapper

    return decorate


def _worth_retrying(exc: BaseException) -> bool:
    """A refused login is; one the connection layer gave up on is not."""
    kind, source = verdict(exc)
    return kind is ErrorKind.AUTH and not isinstance(
        source, CredentialsRejected
    )


def _refresh(
    secret: RotatingSecret, engine: Engine | AsyncEngine | None
) -> None:
    try:
        secret.refresh()
    except RotsafeError as exc:
        logger.warning(
            "secret %s: refresh before a retry failed: %s",
            secret.secret_id,
            exc,
        )
    if engine is None:
        return
    attachment = attachment_of(engine)
    if attachment is not None:
        attachment.retire_stale()
    else:
        # Connections made by a creator carry no origin to choose by.
        sync_engine_of(engine).pool.dispose()


def _log_retry(
    secret: RotatingSecret, name: str, state: tenacity.RetryCallState
) -> None:
    logger.warning(
        "secret %s: %s was refused a login (attempt %d); refreshing and "
        "retrying in %.2f s",
        secret.secret_id,
        name,
        state.attempt_number,
        state.upcoming_sleep,
    )


def _give_up(
    secret: RotatingSecret,
    name: str,
    retrying: tenacity.BaseRetrying,
    exc: BaseException,
) -> None:
    made = retrying.statistics.get("attempt_number", 1)
    if made <= 1 or not _worth_retrying(exc):
        return
    note = f"rotsafe: gave up after {made} attempts refused by the database"
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10 has no add_note; tracebacks there omit notes.
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
    logger.error(
        "secret %s: %s still refused after %d attempts; giving up",
        secret.secret_id,
        name,
        made,
    )
