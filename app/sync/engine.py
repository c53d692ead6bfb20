"""Inbound sync of one calendar link: read the delta, decide per event, commit per page.

The delta link advances only after every page before it is committed, so a crash, a
throttle or a restart at any point leaves the next run to replay pages idempotently and
end in the same bookings as an uninterrupted run.
"""

import logging
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from urllib.parse import quote

from flask import current_app
from sqlalchemy.exc import IntegrityError

from app import clock
from app.database.booking_locks import lock_objects_for_booking
from app.database.bulk import insert_rows
from app.database.quick_commit import commit_without_waiting_for_the_disk
from app.extensions import db
from app.graph import tokens
from app.graph.errors import GraphError, GraphNotFound, GraphSyncStateExpired
from app.graph.paths import mailbox_path
from app.graph.tokens import TokenError
from app.metrics import hourly, instruments
from app.models import Booking, CalendarLink, SyncLogEntry, SyncSeenEvent
from app.models.booking import LINKED_EVENT_INDEX
from app.models.calendar_link import SYNC_ERROR, SYNC_OK
from app.sync import conflicts
from app.sync.decision import (
    CANCEL,
    CREATE,
    REFUSE,
    SKIP,
    UNCHANGED,
    UPDATE,
    VERIFY_REMOVAL,
    Decision,
    LinkContext,
    Settings,
    decide,
)
from app.sync.lookups import PageLookups, PageNotWritten, statuses_of
from app.sync.mapping import EventNotUnderstood, IncomingEvent, parse_event
from app.sync.queries import event_id_column, linked_event_ids
from app.sync.writes import SyncWrites

log = logging.getLogger(__name__)

UTC_PREFERENCE = 'outlook.timezone="UTC"'
RECONCILE_CHUNK = 100
# A page can lose a race for each of its events at most once to each other run.
PAGE_ATTEMPTS_AFTER_A_LINK_RACE = 5


class SyncFailed(Exception):
    """A link could not be synced; the message is safe to show in the portal."""


class CalendarReplaced(Exception):
    """Another calendar took the link's place while this run read the old one (an account switch).

    The run ends without writing what it read: it belongs to a calendar no longer synced,
    and the sync queued by the switch reads the new one.
    """


@dataclass
class SyncSummary:
    pages: int = 0
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    skipped: int = 0
    refused: int = 0
    errors: int = 0
    full: bool = False

    def count(self, action):
        name = {
            CREATE: "created",
            UPDATE: "updated",
            CANCEL: "cancelled",
            SKIP: "skipped",
            REFUSE: "refused",
        }[action]
        setattr(self, name, getattr(self, name) + 1)

    def as_text(self):
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self) if f.name not in ("full",))


def sync_link(link_id, *, full=False, client=None, progress=None):
    """Sync one link and record the outcome on it.

    `progress`, when given, is called with (link, page number, SyncSummary) after each
    committed page. Errors are recorded on the link and raised again so a job queue can
    retry the transient ones.
    """
    link = db.session.get(CalendarLink, link_id)
    if link is None:
        raise SyncFailed(f"Calendar link {link_id} does not exist.")
    kind = "full" if full or not link.delta_link else "incremental"
    try:
        if client is None:
            client = tokens.graph_client_for(link.integration)
        summary = _LinkSync(link, client, progress).sync(full)
    except CalendarReplaced:
        db.session.rollback()
        _end_full_sync_progress(link_id)
        db.session.commit()
        log.info("Link %s: its calendar was replaced during the sync; the run's pages were not applied", link_id)
        return SyncSummary()
    except Exception as error:
        db.session.rollback()
        _record_failure(link_id, error)
        instruments.sync_finished("error", kind)
        raise
    link.last_sync_at = clock.utcnow()
    link.last_sync_status = SYNC_OK
    link.last_sync_error = None
    link.consecutive_failures = 0
    link.failing_since = None
    hourly.count(link.integration_id, syncs_ok=1)
    db.session.commit()
    instruments.sync_finished("ok", "full" if summary.full else "incremental", summary)
    return summary


def _end_full_sync_progress(link_id, finished_at=None):
    """Mark the link's full round as no longer running, finished when `finished_at` is given.

    Joins the caller's transaction.
    """
    values = {"full_sync_started_at": None}
    if finished_at is not None:
        values["full_sync_finished_at"] = finished_at
    db.session.execute(db.update(CalendarLink).where(CalendarLink.id == link_id).values(**values))


def _record_failure(link_id, error):
    _end_full_sync_progress(link_id)
    link = db.session.get(CalendarLink, link_id)
    link.last_sync_status = SYNC_ERROR
    link.last_sync_error = describe_error(error)
    link.consecutive_failures = (link.consecutive_failures or 0) + 1
    link.failing_since = link.failing_since or clock.utcnow()
    db.session.add(
        SyncLogEntry(
            organisation_id=link.integration.organisation_id,
            integration_id=link.integration_id,
            link_id=link.id,
            action="error",
            reason=link.last_sync_error,
            is_error=True,
        )
    )
    hourly.count(link.integration_id, syncs_failed=1)
    db.session.commit()
    log.warning("Sync of link %s failed: %s", link_id, link.last_sync_error)


def describe_error(error):
    if isinstance(error, GraphError | SyncFailed | TokenError):
        return str(error)
    # Anything else is a fault of ours: name its type only, details go to the log.
    return f"Internal error ({type(error).__name__}); see the server log."


def sync_one_event(link_id, event_id, *, client=None):
    """Read one appointment of a link from Outlook again and decide it as a sync would.

    *Try again* on a conflict runs this once the clash is resolved. An appointment no
    longer in Outlook is decided as removed, which closes its conflict.
    """
    link = db.session.get(CalendarLink, link_id)
    if link is None or not link.enabled:
        return
    run = _LinkSync(link, client or tokens.graph_client_for(link.integration), None)
    try:
        item = run.client.get(f"{run.prefix}/events/{quote(event_id, safe='')}", headers={"Prefer": UTC_PREFERENCE})
    except GraphNotFound:
        item = {"id": event_id, "@removed": {"reason": "deleted"}}
    run._apply_page([item], record_seen=False)
    run._commit()


class _LinkSync:
    def __init__(self, link, client, progress):
        self.link = link
        self.integration = link.integration
        # Read once: every commit expires the ORM objects, and reloading them per page costs queries.
        self.link_id, self.integration_id = link.id, link.integration_id
        self.settings = Settings.of(self.integration)
        self.context = LinkContext(self.integration.organisation_id, link.object_id)
        self.timezone = self.integration.organisation.timezone
        self.statuses = statuses_of(self.context.organisation_id)
        self.client = client
        self.progress = progress
        self.prefix = mailbox_path(link)
        # Whose calendar this run reads; checked under the object's lock before each page is applied.
        self.calendar = (link.mailbox, link.account)
        self.summary = SyncSummary()
        self.unchanged = 0
        self.writes = SyncWrites(self.context.organisation_id, self.settings.ires_field, self.integration_id, link.id)
        self.conflicts = conflicts.LinkConflicts(
            self.context.organisation_id, self.integration_id, link.id, link.object_id, self.timezone
        )
        page_size = current_app.config.get("SYNC_PAGE_SIZE", 100)
        self.headers = {"Prefer": f"{UTC_PREFERENCE}, odata.maxpagesize={page_size}"}

    def sync(self, full):
        if full or self._needs_full_round():
            return self._full_round()
        try:
            return self._round(self.link.delta_link, params=None, full=False)
        except GraphSyncStateExpired as expired:
            self._log("resync", f"The delta token is no longer valid ({expired.code or expired.status}); full sync.")
            self.link.delta_link = None
            self._commit()
            return self._full_round()

    def _needs_full_round(self):
        link = self.link
        if not link.delta_link or link.window_start is None or link.last_full_sync_at is None:
            return True
        # The window is encoded in Graph's tokens: changed settings need a new round.
        past = round((link.last_full_sync_at - link.window_start) / timedelta(days=1))
        future = round((link.window_end - link.last_full_sync_at) / timedelta(days=1))
        return (past, future) != (self.integration.window_past_days, self.integration.window_future_days)

    def _full_round(self):
        now = clock.utcnow()
        start = now - timedelta(days=self.integration.window_past_days)
        end = now + timedelta(days=self.integration.window_future_days)
        params = {"startDateTime": _graph_time(start), "endDateTime": _graph_time(end)}
        db.session.execute(db.delete(SyncSeenEvent).where(SyncSeenEvent.link_id == self.link.id))
        self._commit()
        try:
            self._round(f"{self.prefix}/calendarView/delta", params=params, full=True, window=(start, end, now))
        except GraphSyncStateExpired:
            # A page link of this round went stale; the docs advise starting the round again.
            self._log("resync", "A page link of the full sync expired; starting the round again.")
            db.session.execute(db.delete(SyncSeenEvent).where(SyncSeenEvent.link_id == self.link.id))
            self._commit()
            self._round(f"{self.prefix}/calendarView/delta", params=params, full=True, window=(start, end, now))
        return self.summary

    def _round(self, url, *, params, full, window=None):
        self.summary.full = full
        # A round started again decides its events again; only the round that ends is summarised.
        self.unchanged = 0
        # Reconciliation looks for bookings linked before the round whose appointments it
        # did not return; with none in the window (a room's first sync) it has nothing to
        # look for, so the appointments seen are not recorded.
        reconcile = full and self._linked_bookings_in(*window[:2])
        if full:
            self._start_full_sync_progress()
        delta_link = None
        for page in self.client.iter_pages(url, params=params, headers=self.headers):
            self.summary.pages += 1
            self._apply_and_commit_page(page.get("value") or [], record_seen=reconcile, full=full)
            if self.progress:
                self.progress(self.link, self.summary.pages, self.summary)
            delta_link = page.get("@odata.deltaLink")
        if not delta_link:
            raise SyncFailed("Graph ended the sync round without a delta link.")
        # The round's position is the old calendar's if the calendar was replaced meanwhile.
        lock_objects_for_booking(db.session, self.context.object_id)
        self._refuse_a_replaced_calendar()
        if full:
            start, end, started_at = window
            if reconcile:
                self._reconcile(start, end)
            self.link.window_start, self.link.window_end = start, end
            self.link.last_full_sync_at = started_at
            conflicts.forget_unseen(self.link_id, started_at)
            db.session.execute(db.delete(SyncSeenEvent).where(SyncSeenEvent.link_id == self.link.id))
            _end_full_sync_progress(self.link_id, finished_at=clock.utcnow())
        self.link.delta_link = delta_link
        self._log_unchanged()
        self._commit()
        return self.summary

    def _start_full_sync_progress(self):
        # A round started again (a page link expired) counts from zero, as its summary does.
        self.full_pages = self.full_appointments = 0
        db.session.execute(
            db.update(CalendarLink)
            .where(CalendarLink.id == self.link_id)
            .values(
                full_sync_started_at=clock.utcnow(),
                full_sync_pages=0,
                full_sync_appointments=0,
                full_sync_last_page_at=None,
            )
        )
        self._commit()

    def _record_full_sync_page(self, pages, appointments):
        """Store the round's progress in the page's own transaction: it shows only once the page is applied."""
        db.session.execute(
            db.update(CalendarLink)
            .where(CalendarLink.id == self.link_id)
            .values(full_sync_pages=pages, full_sync_appointments=appointments, full_sync_last_page_at=clock.utcnow())
        )

    def _apply_and_commit_page(self, items, *, record_seen, full=False):
        """Apply one page and commit it; if another run linked one of its events first, read it again.

        Two runs of one link can overlap (a job whose lease lapsed, a sync started by hand).
        The database refuses the second link of an event (`LINKED_EVENT_INDEX`); the page
        is then rolled back and decided again against what the other run committed.
        """
        for attempt in range(1, PAGE_ATTEMPTS_AFTER_A_LINK_RACE + 1):
            counts, unchanged = replace(self.summary), self.unchanged
            try:
                self._apply_page(items, record_seen=record_seen)
                if full:
                    appointments = self.full_appointments + sum(1 for item in items if "@removed" not in item)
                    self._record_full_sync_page(self.full_pages + 1, appointments)
                self._commit()
                if full:
                    self.full_pages, self.full_appointments = self.full_pages + 1, appointments
                return
            except IntegrityError as error:
                if LINKED_EVENT_INDEX not in str(error.orig) or attempt == PAGE_ATTEMPTS_AFTER_A_LINK_RACE:
                    raise
                db.session.rollback()
                self.writes.discard()
                for counter in fields(counts):
                    setattr(self.summary, counter.name, getattr(counts, counter.name))
                self.unchanged = unchanged
                log.info("Link %s: another run linked an event of this page first; deciding it again.", self.link_id)

    def _apply_page(self, items, *, record_seen):
        parsed, not_understood = [], []
        for item in items:
            try:
                parsed.append(parse_event(item, self.timezone))
            except EventNotUnderstood as problem:
                not_understood.append((item.get("id"), problem))
        self._apply_events(parsed)
        for event_id, problem in not_understood:
            self.summary.errors += 1
            self._log("error", f"Event not understood: {problem}.", event_id=event_id, is_error=True)
        if record_seen:
            self._remember_seen([event.id for event in parsed if not event.removed])

    def _apply_events(self, events):
        # Graph calls happen before the lock and the first write of the batch: no
        # transaction is held open while Graph answers, so a token renewal never waits on
        # our own lock.
        current = self._current_state_of_removed(events)
        spans = self._spans(events, current)
        if events:
            # Held until the page commits: a portal or API save of the object waits, and
            # the page's overlap decisions read and write the object's bookings alone. An
            # account switch takes it too, so a page read from the old calendar is either
            # applied before the switch unlinks its bookings or not at all.
            lock_objects_for_booking(db.session, self.context.object_id)
            self._refuse_a_replaced_calendar()
        # Read under the lock, so what another run of this calendar committed a moment ago
        # is decided on, not decided again.
        lookups = PageLookups(self.context.organisation_id, self.settings.ires_field, events, self.statuses)
        lookups.prepare_overlaps(self.context.object_id, spans)
        self.conflicts.prepare(events)
        for event in events:
            self._handle(event, lookups, current)

    def _refuse_a_replaced_calendar(self):
        now_synced = db.session.execute(
            db.select(CalendarLink.mailbox, CalendarLink.account).where(CalendarLink.id == self.link_id)
        ).one_or_none()
        if now_synced is None or tuple(now_synced) != self.calendar:
            raise CalendarReplaced()

    def _spans(self, events, current):
        """The times this page may book: its appointments', and where removed ones moved to."""
        spans = [
            (event.start_at, event.end_at)
            for event in events
            if event.start_at and event.end_at and not (event.cancelled or event.series_master)
        ]
        for still_there in current.values():
            if still_there is not None:
                try:
                    moved = parse_event(still_there, self.timezone)
                except EventNotUnderstood:
                    continue
                if moved.start_at and moved.end_at:
                    spans.append((moved.start_at, moved.end_at))
        return [(start, end) for start, end in spans if end > start]

    def _current_state_of_removed(self, events):
        """What Outlook holds now for removed events that have a booking: None when truly gone.

        Graph also reports events that left the window as removed, so look before cancelling.
        """
        removed = {event.id for event in events if event.removed and event.id}
        linked = linked_event_ids(self.context.organisation_id, self.settings.ires_field, removed) if removed else set()
        current = {}
        for event_id in (event.id for event in events if event.id in linked):
            if event_id in current:
                continue
            try:
                current[event_id] = self.client.get(
                    f"{self.prefix}/events/{quote(event_id, safe='')}", headers={"Prefer": UTC_PREFERENCE}
                )
            except GraphNotFound:
                current[event_id] = None
        return current

    def _handle(self, event, lookups, current):
        decision = self._decide(event, lookups)
        if decision.action == VERIFY_REMOVAL:
            decision = self._decide_removal(event, lookups, current.get(event.id))
        booking = self.writes.apply(decision)
        if booking is not None:
            lookups.remember(booking)
        if decision.unlink_event:
            lookups.forget(event.id)
        reason = self.conflicts.follow(event, decision)
        self.summary.count(decision.action)
        if decision.action == SKIP and decision.reason == UNCHANGED:
            # A full round returns every appointment again: one summary line, not one row each.
            self.unchanged += 1
            return
        self._log(decision.action, reason, event_id=event.id, booking=booking, booking_id=decision.booking_id)

    def _decide(self, event, lookups, **options):
        """Decide from what the page has read and remembered; the decision itself never writes.

        A decision may need the database to show what earlier events of the same page did
        (a clash with a booking created a moment ago is reported with its id). Then those
        decisions are written first, and the event is decided again against them.
        """
        try:
            return decide(event, self.context, self.settings, lookups, **options)
        except PageNotWritten:
            lookups.written(self.writes.write())
            return decide(event, self.context, self.settings, lookups, **options)

    def _decide_removal(self, event, lookups, still_there):
        if still_there is None:
            return self._decide(event, lookups, removal_confirmed=True)
        try:
            moved = parse_event(still_there, self.timezone)
        except EventNotUnderstood as problem:
            return Decision(SKIP, event.id, f"Reported removed, still in Outlook, not understood: {problem}.")
        return self._decide(moved, lookups)

    def _remember_seen(self, event_ids):
        if not event_ids:
            return
        rows = [{"link_id": self.link_id, "event_id": event_id} for event_id in dict.fromkeys(event_ids)]
        insert_rows(SyncSeenEvent.__table__, rows, skip_conflicts=True)

    def _linked_bookings_in(self, start, end):
        return db.session.scalar(db.select(self._linked_bookings(start, end).exists()))

    def _linked_bookings(self, start, end):
        event_id = event_id_column(self.settings.ires_field)
        return db.select(Booking.id, event_id.label("event_id")).where(
            Booking.organisation_id == self.context.organisation_id,
            Booking.object_id == self.link.object_id,
            event_id.is_not(None),
            Booking.start_at < end,
            Booking.end_at > start,
        )

    def _reconcile(self, start, end):
        """Bookings linked to events in the window that the full round did not return are gone."""
        seen = db.select(SyncSeenEvent.event_id).where(SyncSeenEvent.link_id == self.link_id)
        event_id = event_id_column(self.settings.ires_field)
        query = self._linked_bookings(start, end).where(event_id.not_in(seen)).order_by(Booking.id)
        missing = db.session.execute(query).all()
        self._commit()
        for offset in range(0, len(missing), RECONCILE_CHUNK):
            chunk = missing[offset : offset + RECONCILE_CHUNK]
            self._apply_events([IncomingEvent(id=missing_event_id, removed=True) for _, missing_event_id in chunk])
            self._commit()

    def _log(self, action, reason, **details):
        self.writes.log(action, reason, **details)

    def _log_unchanged(self):
        """Log one line for the round's unchanged appointments, if it had any (e.g. '1,234 appointments unchanged.')."""
        if self.unchanged:
            noun = "appointment" if self.unchanged == 1 else "appointments"
            self._log(SKIP, f"{self.unchanged:,} {noun} unchanged.")

    def _commit(self):
        self.writes.write()
        # A page lost with the database server is applied again: progress (the delta
        # token) is only stored after the round's last page.
        commit_without_waiting_for_the_disk()


def _graph_time(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
