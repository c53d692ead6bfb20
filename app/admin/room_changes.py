"""Changes to an integration's room table, each with its subscription jobs and its audit entry.

Every function joins the caller's transaction; the view commits. Adding or enabling a
room queues its subscription and a first sync (`activate_link`); removing or disabling
one queues the deletion of its subscription (`deactivate_link`). Graph is never called
from here.
"""

from app.auth import audit_log
from app.extensions import db
from app.models import BookableObject, CalendarLink
from app.models.calendar_link import MAILBOX_ME
from app.subscriptions.jobs import activate_link, deactivate_link
from app.sync.calendar_reset import forget_sync_state


def room_taken(integration, upn, *, other_than=None):
    """Whether the integration has a room with this address (besides link `other_than`)."""
    query = db.select(CalendarLink.id).where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox == upn)
    if other_than is not None:
        query = query.where(CalendarLink.id != other_than)
    return db.session.scalar(query) is not None


def add_room(integration, upn, object_id):
    """Add one room and audit it. Raises IntegrityError (at flush) if the address is taken meanwhile."""
    link = _create(integration, upn, object_id)
    audit_log.record(integration, audit_log.ROOM_ADDED, f"{upn} → {link.object.name}.")
    return link


def _create(integration, upn, object_id):
    link = CalendarLink(integration_id=integration.id, mailbox=upn, object_id=object_id)
    db.session.add(link)
    db.session.flush()
    activate_link(link.id)
    return link


def edit_room(link, upn, object_id):
    """Change a room's address and object; return what changed (empty when nothing did).

    A new address is a different calendar: its subscription, delta token and sync state
    start afresh. A new object takes the appointments synced from now on; bookings made
    earlier keep theirs.
    """
    changes = []
    address_changed = upn != link.mailbox
    if address_changed:
        changes.append(f"address {link.mailbox} → {upn}")
        deactivate_link(link)
        forget_sync_state(link)
        link.mailbox = upn
        link.places_missing_since = None  # not checked against Microsoft 365 yet
    if object_id != link.object_id:
        new_object = db.session.get(BookableObject, object_id)
        changes.append(f"object {link.object.name} → {new_object.name}")
        link.object_id = object_id
        link.object = new_object
    if not changes:
        return changes
    db.session.flush()
    if address_changed and link.enabled:
        activate_link(link.id)
    audit_log.record(link.integration, audit_log.ROOM_EDITED, f"{link.mailbox}: " + "; ".join(changes) + ".")
    return changes


def set_enabled(link, enabled):
    """Enable (subscribe and sync) or disable (unsubscribe) a room; False when it already was."""
    if link.enabled == enabled:
        return False
    link.enabled = enabled
    if enabled:
        activate_link(link.id)
    else:
        deactivate_link(link)
    action = audit_log.ROOM_ENABLED if enabled else audit_log.ROOM_DISABLED
    audit_log.record(link.integration, action, f"{link.mailbox}.")
    return True


def remove_room(link):
    """Remove a room; its bookings and its sync log stay."""
    integration, mailbox, object_name = link.integration, link.mailbox, link.object.name
    deactivate_link(link)
    db.session.delete(link)
    audit_log.record(integration, audit_log.ROOM_REMOVED, f"{mailbox} (was mapped to {object_name}).")


def apply_paste(integration, plan):
    """Write a confirmed bulk-paste plan: add its new rooms, move its changed ones; one audit entry."""
    for planned in plan.added:
        _create(integration, planned.upn, planned.object_id)
    for planned in plan.changed:
        link = db.session.get(CalendarLink, planned.link_id)
        link.object_id = planned.object_id
    lines = [plan.summary() + "."]
    if plan.added:
        lines.append("Added: " + ", ".join(f"{p.upn} → {p.object_name}" for p in plan.added) + ".")
    if plan.changed:
        lines.append(
            "Changed: " + ", ".join(f"{p.upn} {p.old_object_name} → {p.object_name}" for p in plan.changed) + "."
        )
    audit_log.record(integration, audit_log.ROOMS_PASTED, " ".join(lines))


def apply_import(integration, plan):
    """Write a confirmed plan of rooms picked in Microsoft 365: create their new objects, add the rooms.

    Raises IntegrityError (at flush) when a room or an object name was taken meanwhile.
    """
    created = []
    for planned in plan.added:
        object_id = planned.object_id
        if planned.new_object:
            new_object = BookableObject(
                organisation_id=integration.organisation_id,
                name=planned.new_object.name,
                capacity=planned.new_object.capacity,
            )
            db.session.add(new_object)
            db.session.flush()
            object_id = new_object.id
            created.append(planned)
        _create(integration, planned.upn, object_id)
    lines = [f"{len(plan.added)} room(s) added from Microsoft 365, {len(created)} object(s) created."]
    lines.append(
        "Added: "
        + ", ".join(f"{p.upn} → {p.object_name}" + (" (new object)" if p.new_object else "") for p in plan.added)
        + "."
    )
    audit_log.record(integration, audit_log.ROOMS_IMPORTED, " ".join(lines))


def record_places_presence(integration, present, now):
    """Note, per room of `integration`, whether a complete listing of the tenant's rooms had its address.

    A room missing from the listing keeps the moment it was first missed; one that is
    listed again is cleared. Rooms are only flagged, never removed.
    """
    links = db.session.scalars(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox != MAILBOX_ME)
    )
    for link in links:
        if link.mailbox in present:
            link.places_missing_since = None
        elif link.places_missing_since is None:
            link.places_missing_since = now
