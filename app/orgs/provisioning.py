from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from app.extensions import db
from app.models import BookingStatus, Organisation
from app.models.booking import DEFAULT_STATUSES
from app.models.organisation import DEFAULT_TIMEZONE


def is_known_timezone(name):
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone_choices():
    return sorted(available_timezones())


def create_organisation(name, timezone=DEFAULT_TIMEZONE):
    """A new organisation with the default booking statuses; the caller commits."""
    organisation = Organisation(name=name, timezone=timezone)
    db.session.add(organisation)
    for position, (status_name, blocks) in enumerate(DEFAULT_STATUSES):
        db.session.add(
            BookingStatus(organisation=organisation, name=status_name, blocks_object=blocks, position=position)
        )
    db.session.flush()
    return organisation
