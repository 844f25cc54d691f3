"""A local AWS Secrets Manager for tests and drills, served by moto.

moto keeps its state per process: every server started in one process, and
any ``moto.mock_aws`` block, share the same secrets.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
from typing import Any, TypeVar

import boto3
import botocore.session
from moto.server import ThreadedMotoServer
from moto.settings import allow_unknown_region

logger = logging.getLogger(__name__)

_S = TypeVar("_S", bound="SecretsManagerServer")

_HOST = "127.0.0.1"
_RESET_TIMEOUT = 10.0

# Keep AWS_PROFILE, ~/.aws/config and ~/.aws/credentials out of the way: a
# profile that does not exist on this machine would break every client.
_ISOLATED_SESSION_VARIABLES = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
}


def serves_region(region: str) -> bool:
    """Whether moto answers Secrets Manager calls made for ``region``.

    moto serves the regions botocore lists for Secrets Manager, in every
    partition (any region with ``MOTO_ALLOW_NONEXISTENT_REGION=true``); to
    calls for another it answers HTTP 500 with an error page.
    """
    if allow_unknown_region():
        return True

    session = botocore.session.Session(
        session_vars=_ISOLATED_SESSION_VARIABLES
    )
    return any(
        region
        in session.get_available_regions(
            "secretsmanager", partition_name=partition
        )
        for partition in session.get_available_partitions()
    )


class SecretsManagerServer:
    """An in-process moto server answering Secrets Manager calls over HTTP.

    It listens on 127.0.0.1 on a free port, so code under test talks to it
    through a real boto3 client, exactly as it would to AWS. ``start()``
    returns once the server accepts requests; ``stop()`` is safe to call
    more than once. Use it as a context manager to get both.
    """

    def __init__(self, *, region: str = "us-east-1") -> None:
        """Describe a server; nothing runs until ``start()``.

        Args:
            region: Region the clients from ``client()`` are set to.
        """
        self.region = region
        self.host = _HOST
        self._lock = threading.Lock()
        self._server: ThreadedMotoServer | None = None
        self._port: int | None = None
        self._session: Any = None

    def __repr__(self) -> str:
        """Return a description naming the endpoint."""
        endpoint = self.endpoint_url if self._port is not None else None
        return (
            f"{type(self).__name__}(endpoint_url={endpoint!r}, "
            f"region={self.region!r})"
        )

    def __enter__(self: _S) -> _S:
        """Start the server and return it."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: The server has not been started.
        """
        if self._port is None:
            raise RuntimeError("SecretsManagerServer is not started")

        return self._port

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 as ``endpoint_url``.

        Raises:
            RuntimeError: The server has not been started.
        """
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start serving on a free port; does nothing if already running."""
        with self._lock:
            if self._server is not None:
                return

            # Port 0 lets the kernel choose; the server reports its choice.
            server = ThreadedMotoServer(
                ip_address=self.host, port=0, verbose=False
            )
            server.start()
            self._server = server
            self._port = server.get_host_and_port()[1]
            logger.info("Started Secrets Manager at %s", self.endpoint_url)

    def stop(self) -> None:
        """Stop serving; safe to call again, or before ``start()``."""
        with self._lock:
            if self._server is None:
                return

            self._server.stop()
            self._server = None
            self._port = None
            logger.info("Stopped Secrets Manager")

    def reset(self) -> None:
        """Forget every secret, through moto's reset endpoint.

        This clears moto's state for the whole process, including other
        servers and ``mock_aws`` blocks.

        Raises:
            RuntimeError: The server is not started or refused the reset.
        """
        connection = http.client.HTTPConnection(
            self.host, self.port, timeout=_RESET_TIMEOUT
        )
        try:
            connection.request("POST", "/moto-api/reset")
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()

        if response.status != http.client.OK:
            raise RuntimeError(
                f"moto refused the reset with HTTP status {response.status}"
            )

        logger.debug("Reset moto state")

    def client(self, **config: Any) -> Any:
        """Return a boto3 Secrets Manager client talking to this server.

        The client carries dummy credentials and this server's region, and
        comes from a private boto3 session that ignores ``AWS_PROFILE`` and
        the files under ``~/.aws``. The first call takes about 0.2 s while
        boto3 loads its service models; later calls are quicker.

        Args:
            config: Extra keyword arguments for ``boto3.client``, such as
                ``config=botocore.config.Config(...)``; they override the
                defaults.

        Returns:
            A ``secretsmanager`` client.

        Raises:
            RuntimeError: The server has not been started.
        """
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "aws_session_token": None,
            **config,
        }
        with self._lock:
            if self._session is None:
                self._session = boto3.session.Session(
                    botocore_session=botocore.session.Session(
                        session_vars=_ISOLATED_SESSION_VARIABLES
                    )
                )

            # boto3 sessions are not thread-safe; the clients they make are.
            return self._session.client("secretsmanager", **options)
