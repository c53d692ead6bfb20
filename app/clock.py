"""The one place the application asks for the current time, so tests can move it."""

from datetime import UTC, datetime


def utcnow():
    return datetime.now(UTC)
