"""The one place that turns a calendar link into the Graph path of its mailbox.

Delegated and application mode run the same sync code; only this prefix differs.
The sync, the subscriptions and the connection test ask here instead of building it
from the link's mailbox; outbound, delegated only, writes to ``me/events`` directly.
"""

from urllib.parse import quote

from app.models.calendar_link import MAILBOX_ME


def mailbox_path(link):
    """Return ``"me"`` for the delegated user's own calendar, else ``"users/{upn}"``.

    The UPN is percent-encoded except for ``@``, so an address holding ``/``, ``?``,
    ``#`` or ``'`` cannot change which resource the path names.
    """
    if link.mailbox == MAILBOX_ME:
        return MAILBOX_ME
    return "users/" + quote(link.mailbox, safe="@")
