"""Outlook appointments not booked because they overlap a booking: kept, closed and counted.

The sync decides; this module remembers. A refusal for an overlap records one row per
appointment of a calendar (a repeated refusal refreshes it), and any other decision about
that appointment (booked, deleted or cancelled in Outlook, moved off the clash) closes it.
"""

from datetime import timedelta

from sqlalchemy import func

from app import clock
from app.bookings.overlap import blocking_bookings
from app.clock import utc_to_local
from app.extensions import db
from app.models import Booking, SyncConflict
from app.sync.decision import NOT_BOOKED, REFUSE
from app.sync.mapping import PRIVATE_REMARK

NO_SUBJECT = "(no subject)"


def shown_subject(event):
    """The subject as far as privacy allows: a private appointment shows no subject at all."""
    if event.private:
        return PRIVATE_REMARK
    return event.subject or NO_SUBJECT


def when_text(start_at, end_at, all_day, timezone):
    """An appointment's time in the organisation's zone; whole days for an all-day one, never 00:00–00:00."""
    start, end = utc_to_local(start_at, timezone), utc_to_local(end_at, timezone)
    if all_day:
        last_day = (end - timedelta(days=1)).date()
        return f"{start:%Y-%m-%d} all day" + (f" to {last_day:%Y-%m-%d}" if last_day > start.date() else "")
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"


def appointment_text(subject, start_at, end_at, all_day, organiser_name, organiser_email, timezone):
    """One line naming an appointment, e.g. '"Board meeting" on 2026-12-01 10:00–11:00, organiser Ann <ann@x>'."""
    text = f"“{subject}” on {when_text(start_at, end_at, all_day, timezone)}"
    organiser = organiser_label(organiser_name, organiser_email)
    return f"{text}, organiser {organiser}" if organiser else text


def organiser_label(name, email):
    if name and email and name.lower() != email.lower():
        return f"{name} <{email}>"
    return email or name or ""


class LinkConflicts:
    """The open conflicts of one calendar link, followed page by page by the sync engine."""

    def __init__(self, organisation_id, integration_id, link_id, object_id, timezone):
        self.organisation_id = organisation_id
        self.integration_id = integration_id
        self.link_id = link_id
        self.object_id = object_id
        self.timezone = timezone
        self._open = {}

    def prepare(self, events):
        """Read the open conflicts of this page's appointments; call under the object's lock."""
        event_ids = {event.id for event in events if event.id}
        self._open = {}
        if event_ids:
            query = db.select(SyncConflict).where(
                SyncConflict.link_id == self.link_id, SyncConflict.event_id.in_(event_ids)
            )
            with db.session.no_autoflush:
                self._open = {conflict.event_id: conflict for conflict in db.session.scalars(query)}

    def follow(self, event, decision):
        """Record or close the event's conflict; return the log reason, naming both sides of a clash."""
        clash_id = self._clash_of(event, decision)
        if clash_id is None:
            self._close(event.id)
            return decision.reason
        conflict = self._open.get(event.id)
        now = clock.utcnow()
        if conflict is None:
            conflict = SyncConflict(
                organisation_id=self.organisation_id,
                integration_id=self.integration_id,
                link_id=self.link_id,
                event_id=event.id,
                first_seen_at=now,
            )
            db.session.add(conflict)
            self._open[event.id] = conflict
        conflict.subject = shown_subject(event)
        conflict.start_at, conflict.end_at, conflict.all_day = event.start_at, event.end_at, event.all_day
        conflict.organiser_name, conflict.organiser_email = event.organiser_name, event.organiser_email
        conflict.booking_id = clash_id
        conflict.reason = decision.reason
        conflict.last_seen_at = now
        return self._log_reason(conflict, decision.reason)

    def _clash_of(self, event, decision):
        """The booking an overlap refusal of a new appointment clashes with, or None for any other decision."""
        if decision.action != REFUSE or decision.booking_id is not None or not decision.reason.startswith(NOT_BOOKED):
            return None
        if event.start_at is None or event.end_at is None:
            return None
        query = (
            blocking_bookings(self.object_id, event.start_at, event.end_at, Booking.id)
            .where(Booking.organisation_id == self.organisation_id)
            .order_by(Booking.start_at, Booking.id)
            .limit(1)
        )
        # The refusal itself read the database as the page's decisions have left it.
        with db.session.no_autoflush:
            return db.session.scalar(query)

    def _close(self, event_id):
        conflict = self._open.pop(event_id, None)
        if conflict is None:
            return
        if conflict in db.session.new:
            db.session.expunge(conflict)
        else:
            db.session.delete(conflict)

    def _log_reason(self, conflict, reason):
        appointment = appointment_text(
            conflict.subject,
            conflict.start_at,
            conflict.end_at,
            conflict.all_day,
            conflict.organiser_name,
            conflict.organiser_email,
            self.timezone,
        )
        return f"{NOT_BOOKED}the appointment {appointment}. {reason[len(NOT_BOOKED) :].strip()}"


def forget_unseen(link_id, round_started_at):
    """A full round decides every appointment again: a conflict it did not refresh is gone from Outlook."""
    db.session.execute(
        db.delete(SyncConflict).where(SyncConflict.link_id == link_id, SyncConflict.last_seen_at < round_started_at)
    )


def forget_link(link_id):
    """The link's calendar changed: its conflicts belong to appointments no longer synced."""
    db.session.execute(db.delete(SyncConflict).where(SyncConflict.link_id == link_id))


def open_conflicts(integration_id, limit=None):
    """The integration's open conflicts, soonest appointment first, with room and clashing booking loaded."""
    query = (
        db.select(SyncConflict)
        .where(SyncConflict.integration_id == integration_id)
        .options(db.joinedload(SyncConflict.link), db.joinedload(SyncConflict.booking))
        .order_by(SyncConflict.start_at, SyncConflict.id)
        .limit(limit)
    )
    return db.session.scalars(query).unique().all()


def open_conflict_counts(integration_ids=None):
    """Open conflicts per integration id, as a dict; integrations without any are left out.

    The caller scopes `integration_ids` to what the signed-in user may see; None counts all.
    """
    query = db.select(SyncConflict.integration_id, func.count()).group_by(SyncConflict.integration_id)
    if integration_ids is not None:
        ids = list(integration_ids)
        if not ids:
            return {}
        query = query.where(SyncConflict.integration_id.in_(ids))
    return dict(db.session.execute(query).all())
