"""The example service survives a rotation, drilled with the plugin alone."""

from __future__ import annotations

import pytest

import flask_service


@pytest.mark.parametrize("strategy", ["single-user", "alternating-users"])
def test_example_service_survives_rotation(rotation, strategy):
    """Requests through a rotation all succeed, whichever user it leaves."""
    app = flask_service.create_app(rotation.secret(), rotation.url())

    def request() -> None:
        response = app.test_client().post("/visits/home")
        assert response.status_code == 200, response.text

    with rotation.load(request) as load:
        load.wait_for(30)
        rotation.rotate(strategy, window=2)
        load.wait_for(load.result.count + 30)

    assert load.result.failed == 0, load.result.failures[:3]
    # Each new connection found the working stage at once rather than
    # waiting for AWSCURRENT to move, and Secrets Manager was asked little.
    assert load.result.slowest < 1.0
    assert rotation.calls <= 10
    assert app.test_client().get("/health").json == {"status": "ok"}
