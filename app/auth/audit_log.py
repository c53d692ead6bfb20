"""The audit log: who changed which setting or room of an integration, and when.

`record` adds one entry to the caller's transaction, so a change and its entry are
committed together or not at all. Entries name what changed; they never carry a
secret's value.
"""

from flask_login import current_user

from app.extensions import db
from app.models import AuditEntry

INTEGRATION_CREATED = "integration_created"
SETTINGS_SAVED = "settings_saved"
ROOM_ADDED = "room_added"
ROOM_EDITED = "room_edited"
ROOM_REMOVED = "room_removed"
ROOM_ENABLED = "room_enabled"
ROOM_DISABLED = "room_disabled"
ROOMS_PASTED = "rooms_pasted"
ROOMS_IMPORTED = "rooms_imported"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
SIGN_IN_FAILED = "sign_in_failed"
ACCOUNT_SWITCHED = "account_switched"
SWITCH_DECLINED = "switch_declined"
JOB_RETRIED = "job_retried"
FULL_SYNC_STARTED = "full_sync_started"
CONFLICT_RETRIED = "conflict_retried"
ACCOUNT_CREATED = "account_created"
ACCOUNT_DISABLED = "account_disabled"
ACCOUNT_ENABLED = "account_enabled"
LINK_ISSUED = "password_link_issued"
PASSWORD_SET = "password_set"
PASSWORD_CHANGED = "password_changed"
RESET_REQUESTED = "password_reset_requested"
ACCOUNT_ACTIONS = (
    ACCOUNT_CREATED,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    LINK_ISSUED,
    PASSWORD_SET,
    PASSWORD_CHANGED,
    RESET_REQUESTED,
)

#: How each action reads in the portal.
ACTION_LABELS = {
    INTEGRATION_CREATED: "Integration created",
    SETTINGS_SAVED: "Settings changed",
    ROOM_ADDED: "Room added",
    ROOM_EDITED: "Room edited",
    ROOM_REMOVED: "Room removed",
    ROOM_ENABLED: "Room enabled",
    ROOM_DISABLED: "Room disabled",
    ROOMS_PASTED: "Rooms pasted",
    ROOMS_IMPORTED: "Rooms imported from Microsoft 365",
    CONNECTED: "Connected",
    DISCONNECTED: "Disconnected",
    SIGN_IN_FAILED: "Sign-in failed",
    ACCOUNT_SWITCHED: "Switched to another account",
    SWITCH_DECLINED: "Kept the connected account",
    JOB_RETRIED: "Job retried",
    FULL_SYNC_STARTED: "Full sync started",
    CONFLICT_RETRIED: "Appointment not booked: tried again",
    ACCOUNT_CREATED: "Account created",
    ACCOUNT_DISABLED: "Account disabled",
    ACCOUNT_ENABLED: "Account enabled",
    LINK_ISSUED: "Set-password link issued",
    PASSWORD_SET: "Password set from a link",
    PASSWORD_CHANGED: "Password changed",
    RESET_REQUESTED: "Password reset requested",
}

DETAIL_LIMIT = 4000


def record(integration, action, detail="", *, commit=False):
    """Note that the signed-in user did `action` to `integration`; joins the caller's transaction.

    `commit=True` commits at once, for callers whose change is committed already.
    """
    user = current_user if current_user and current_user.is_authenticated else None
    if len(detail) > DETAIL_LIMIT:
        detail = detail[: DETAIL_LIMIT - 1] + "…"
    entry = AuditEntry(
        organisation_id=integration.organisation_id,
        integration_id=integration.id,
        user_id=user.id if user else None,
        user_email=user.email if user else "",
        action=action,
        detail=detail,
    )
    db.session.add(entry)
    if commit:
        db.session.commit()
    return entry


def record_account(account, action, detail="", *, actor=None):
    """Note `action` on the sign-in account `account`; joins the caller's transaction.

    The entry belongs to the account's organisation (none for support accounts). `actor`
    defaults to the signed-in user; pass the account itself for what its owner did
    without being signed in, such as setting a password from a link.
    """
    if actor is None and current_user and current_user.is_authenticated:
        actor = current_user
    entry = AuditEntry(
        organisation_id=account.organisation_id,
        integration_id=None,
        user_id=actor.id if actor else None,
        user_email=actor.email if actor else "",
        action=action,
        detail=(detail or account.email)[:DETAIL_LIMIT],
    )
    db.session.add(entry)
    return entry


def describe_changes(before, after, labels):
    """ "Label: old → new" for every key whose value differs, in the order of `labels`.

    Values are shown as given; pass display values (names rather than ids).
    """
    parts = []
    for key, label in labels.items():
        if before.get(key) != after.get(key):
            parts.append(f"{label}: {_shown(before.get(key))} → {_shown(after.get(key))}")
    return parts


def _shown(value):
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
