"""A small Flask service whose database login survives password rotation.

Run it against a real database and secret::

    pip install 'rotsafe[postgres]' flask
    export DB_SECRET_ID=prod/app/db
    export DATABASE_URL=postgresql+psycopg://db.internal/app
    flask --app flask_service run

The URL names the server and database only; the login comes from the
secret, through every rotation.
"""

from __future__ import annotations

import os

import flask
import sqlalchemy
from sqlalchemy import text

import rotsafe

VISITS = sqlalchemy.Table(
    "visits",
    sqlalchemy.MetaData(),
    sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
    sqlalchemy.Column("path", sqlalchemy.String(200), nullable=False),
)


def create_app(
    secret: rotsafe.RotatingSecret | None = None, url: str | None = None
) -> flask.Flask:
    """Build the service; the secret and URL default to the environment."""
    secret = secret or rotsafe.RotatingSecret(os.environ["DB_SECRET_ID"])
    engine = sqlalchemy.create_engine(
        url or os.environ["DATABASE_URL"], pool_size=5, pool_pre_ping=True
    )
    rotsafe.attach(engine, secret)
    VISITS.metadata.create_all(engine)

    # Safe to run again: a failed attempt's transaction is rolled back.
    @rotsafe.retry_on_auth_error(secret, engine=engine)
    def record_visit(path: str) -> int:
        with engine.begin() as connection:
            connection.execute(VISITS.insert().values(path=path))
            return connection.execute(
                text("SELECT COUNT(*) FROM visits WHERE path = :path"),
                {"path": path},
            ).scalar_one()

    app = flask.Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.post("/visits/<path:path>")
    def visit(path: str) -> dict[str, object]:
        return {"path": path, "visits": record_visit(path)}

    return app
