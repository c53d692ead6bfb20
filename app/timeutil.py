"""Conversions between the organisation's wall clock (shown in the portal) and UTC (stored)."""

from datetime import UTC
from zoneinfo import ZoneInfo


def local_to_utc(naive_local, timezone_name):
    if naive_local is None:
        return None
    return naive_local.replace(tzinfo=ZoneInfo(timezone_name)).astimezone(UTC)


def utc_to_local(aware, timezone_name):
    if aware is None:
        return None
    return aware.astimezone(ZoneInfo(timezone_name))
