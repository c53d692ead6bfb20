"""What a fresh web worker does before its first request, so that request doesn't pay for it.

A new PostgreSQL connection starts a server process. Without a warm-up, a burst of
notifications reaching a fresh worker has each of its threads open its own connection at
once while requests queue behind them; the routes are read up front for the same reason.
"""

import logging

from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.subscriptions import routing

log = logging.getLogger(__name__)


def warm_up(app, connections):
    """Open `connections` pooled database connections and read the subscription routes.

    A database that can't be reached yet is no reason to keep the worker from starting:
    connections are then opened as requests need them, as they would be anyway.
    """
    with app.app_context():
        try:
            _open_connections(connections)
            routing.routes().preload()
        except SQLAlchemyError as error:
            log.warning("Could not warm up the database connections: %s", error)
        finally:
            db.session.remove()


def _open_connections(count):
    opened = []
    try:
        for _ in range(count):
            opened.append(db.engine.connect())
    finally:
        for connection in opened:
            connection.close()
