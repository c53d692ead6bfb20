"""Sign-in accounts managed in the portal: who may see them, creating, disabling, enabling.

Support staff manage every account; an organisation's admin sees its accounts and
changes none (the issue gives creating accounts to support). Two rules keep the portal
reachable: nobody disables their own account, and the last active support account
stays enabled.
"""

from app import clock
from app.auth import audit_log
from app.extensions import db
from app.models import AuditEntry, User
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT, UNUSABLE_PASSWORD_PREFIX


class AccountRefused(Exception):
    """A change the rules above refuse; the message says why, for the person who asked."""


def accounts_query(organisation=None):
    """Accounts of `organisation`, or of the whole installation when None; support first, then by e-mail."""
    query = db.select(User).options(db.joinedload(User.organisation))
    if organisation is not None:
        query = query.where(User.organisation_id == organisation.id)
    return query.order_by(User.organisation_id.is_not(None), User.email)


def recent_account_changes(organisation=None, limit=20):
    """The newest audit entries about accounts: of `organisation`, or of all (support accounts too)."""
    query = db.select(AuditEntry).where(AuditEntry.action.in_(audit_log.ACCOUNT_ACTIONS))
    if organisation is not None:
        query = query.where(AuditEntry.organisation_id == organisation.id)
    return db.session.scalars(query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(limit)).all()


def email_taken(email):
    return db.session.scalar(db.select(User.id).where(User.email == normalised_email(email))) is not None


def normalised_email(email):
    return (email or "").strip().lower()


def create_account(email, role, organisation):
    """An invited account with no usable password; joins the caller's transaction."""
    user = User(
        email=normalised_email(email),
        role=role,
        organisation_id=organisation.id if role == ROLE_ADMIN else None,
    )
    user.set_unusable_password()
    db.session.add(user)
    db.session.flush()
    audit_log.record_account(user, audit_log.ACCOUNT_CREATED, describe(user, organisation))
    return user


def disable_account(actor, user):
    if user.id == actor.id:
        raise AccountRefused("You cannot disable your own account.")
    if user.is_disabled:
        return
    if user.role == ROLE_SUPPORT and _other_active_support_accounts(user) == 0:
        raise AccountRefused("This is the last active support account; enable or create another one first.")
    user.disabled_at = clock.utcnow()
    audit_log.record_account(user, audit_log.ACCOUNT_DISABLED)


def enable_account(user):
    if not user.is_disabled:
        return
    user.disabled_at = None
    audit_log.record_account(user, audit_log.ACCOUNT_ENABLED)


def change_password(user, new_password):
    user.set_password(new_password)
    audit_log.record_account(user, audit_log.PASSWORD_CHANGED)


def note_sign_in(user):
    user.last_sign_in_at = clock.utcnow()


def describe(user, organisation=None):
    where = f", {organisation.name}" if organisation is not None and user.role == ROLE_ADMIN else ""
    return f"{user.email} ({user.role}{where})"


def _other_active_support_accounts(user):
    return db.session.scalar(
        db.select(db.func.count(User.id)).where(
            User.role == ROLE_SUPPORT,
            User.disabled_at.is_(None),
            User.id != user.id,
            # An invited account cannot sign in yet, so it would not keep the portal reachable.
            User.password_hash.not_like(UNUSABLE_PASSWORD_PREFIX + "%"),
        )
    )
