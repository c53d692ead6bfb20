"""calendarView delta: rounds, pages and the state behind delta tokens.

A *round* is what one request chain returns: the initial request (or a replayed delta
link) computes the whole round at once from the calendar as it is then; its pages are
handed out through `$skiptoken` links and the last page carries a `$deltatoken` link to
the :class:`SyncState` at the round's start. A later round from that state returns:

* every instance in the window that is new to the client or changed since (by version);
* `@removed` for every instance the client had that is no longer in the window:
  deleted, cancelled, or moved out of it;
* `@removed` for single items changed or deleted outside the window since, which the
  client never had. Graph documents this quirk; a client must check before cancelling.

Tokens are opaque and random, kept server-side, and stay valid until the mailbox's
generation changes (the control API's "expire delta tokens"), so replaying a delta link
or re-fetching a page gives the same answer. Series masters never appear: calendarView
expands them into occurrences and exceptions.
"""

import secrets
from dataclasses import dataclass

from . import zones
from .events import removed, to_graph


@dataclass(frozen=True)
class SyncState:
    """What a client holds after a round: the window, the version seen, the ids it has."""

    mailbox: str
    generation: int
    window_start: object
    window_end: object
    version: int
    known: frozenset


@dataclass
class Round:
    mailbox: str
    generation: int
    entries: list
    end_state: SyncState
    delta_token: str | None = None


def new_token():
    return secrets.token_urlsafe(24)


def compute_round(calendar, window_start, window_end, since=None, body_type=None):
    """The entries of one round, as UTC JSON, and the state a client has after it."""
    current = calendar.instances(window_start, window_end)
    current_ids = {instance.id for instance in current}
    entries = []
    for instance in current:
        unseen = since is None or instance.id not in since.known
        if unseen or instance.version > since.version:
            entries.append(to_graph(instance.event, instance=instance, body_type=body_type))
    if since is not None:
        gone = sorted(since.known - current_ids)
        outside = [
            event.id
            for event in calendar.items.values()
            if not event.is_series and event.version > since.version and event.id not in current_ids
        ]
        deleted = [event_id for event_id, version in calendar.tombstones.items() if version > since.version]
        entries.extend(removed(event_id) for event_id in dict.fromkeys(gone + outside + deleted))
    state = SyncState(
        calendar.upn, calendar.generation, window_start, window_end, calendar.version, frozenset(current_ids)
    )
    return Round(calendar.upn, calendar.generation, entries, state)


def in_zone(entry, zone_out):
    """An entry computed in UTC, shown in the zone the page request prefers."""
    if "@removed" in entry or not zone_out or zone_out == "UTC":
        return entry
    shown = dict(entry)
    for name in ("start", "end"):
        value = entry[name]
        if entry.get("isAllDay"):
            shown[name] = {"dateTime": value["dateTime"], "timeZone": zone_out}
        else:
            moment = zones.parse_instant(value["dateTime"] + "Z")
            shown[name] = {
                "dateTime": zones.graph_datetime(zones.to_wall_clock(moment, zone_out)),
                "timeZone": zone_out,
            }
    return shown
