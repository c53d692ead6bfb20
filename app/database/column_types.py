"""Column types that keep two promises: times are stored in UTC, secrets are stored encrypted."""

from datetime import UTC

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

from app.database import encryption


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column; attach a time zone first")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class EncryptedText(TypeDecorator):
    """Text encrypted with the configured ENCRYPTION_KEY before it reaches the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return encryption.encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return encryption.decrypt(value)
