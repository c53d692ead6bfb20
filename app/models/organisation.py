import hashlib
import hmac
import secrets

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.clock import utcnow
from app.database.column_types import UTCDateTime
from app.extensions import db

DEFAULT_TIMEZONE = "Europe/Amsterdam"

ROLE_SUPPORT = "support"
ROLE_ADMIN = "admin"
ROLES = (ROLE_SUPPORT, ROLE_ADMIN)
# Never produced by werkzeug's hashes, so check_password_hash is False for every password.
UNUSABLE_PASSWORD_PREFIX = "!"


class Organisation(db.Model):
    """An i-Reserve customer: everything an admin sees belongs to one of these."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    # Incidents of this organisation are also POSTed here as JSON (see app/alerts/delivery.py).
    alert_webhook_url: Mapped[str | None] = mapped_column(String(2000))
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    def __repr__(self):
        return f"<Organisation {self.id} {self.name!r}>"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('support', 'admin')", name="role_known"),
        CheckConstraint("role = 'support' OR organisation_id IS NOT NULL", name="admin_has_organisation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(20))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # A disabled account cannot sign in, and its open sessions end on their next request.
    disabled_at = mapped_column(UTCDateTime)
    last_sign_in_at = mapped_column(UTCDateTime)
    # Changes whenever a set-password link is issued or a password is set, so that every
    # link issued before stops working (see app/auth/passwords.py).
    link_nonce: Mapped[str | None] = mapped_column(String(32))

    organisation: Mapped[Organisation | None] = relationship()

    @property
    def is_support(self):
        return self.role == ROLE_SUPPORT

    @property
    def is_disabled(self):
        return self.disabled_at is not None

    @property
    def is_active(self):
        # Flask-Login refuses login_user() for an inactive account.
        return not self.is_disabled

    def get_id(self):
        # The session names the password too, so a changed password ends every other session.
        return f"{self.id}.{self.password_fingerprint()}"

    def password_fingerprint(self):
        key = current_app.config["SECRET_KEY"].encode()
        return hmac.new(key, self.password_hash.encode(), hashlib.sha256).hexdigest()[:16]

    @property
    def has_password(self):
        return not self.password_hash.startswith(UNUSABLE_PASSWORD_PREFIX)

    @property
    def status(self):
        if self.is_disabled:
            return "disabled"
        return "active" if self.has_password else "invited"

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)
        self.link_nonce = secrets.token_hex(16)

    def set_unusable_password(self):
        """An invited account: no password signs it in until one is set from its link."""
        self.password_hash = UNUSABLE_PASSWORD_PREFIX + secrets.token_hex(16)

    def rotate_link_nonce(self):
        self.link_nonce = secrets.token_hex(16)

    def check_password(self, password):
        return self.has_password and check_password_hash(self.password_hash, password)

    def can_access(self, organisation_id):
        return self.is_support or self.organisation_id == organisation_id
