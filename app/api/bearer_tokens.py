"""API tokens: a random secret shown once, stored only as its SHA-256, revoked by an admin."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import or_, update

from app import clock
from app.extensions import db
from app.models import ApiToken

TOKEN_PREFIX = "ireserve_"
# Fits ApiToken.prefix: "ireserve_" and seven random characters, enough to tell tokens apart.
PREFIX_LENGTH = 16
# A token is 9 + 43 characters; anything much longer cannot be one and is not hashed.
MAX_TOKEN_LENGTH = 200
# `last_used_at` is a hint for admins, not an audit log: one write a minute per token is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(secret):
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def create_token(organisation_id, name, created_by_id=None):
    """Add a token to the session; return it with its secret, which exists nowhere else afterwards."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        organisation_id=organisation_id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:PREFIX_LENGTH],
        created_by_id=created_by_id,
        created_at=clock.utcnow(),
    )
    db.session.add(token)
    db.session.flush()
    return token, secret


def revoke_token(token):
    if token.revoked_at is None:
        token.revoked_at = clock.utcnow()


def find_active_token(secret):
    """The active token whose secret this is, or None.

    The lookup goes by hash, so the database compares digests rather than secrets and its
    timing tells a caller nothing about any stored token.
    """
    if not secret or len(secret) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(secret)
    token = db.session.scalar(db.select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest) or not token.is_active:
        return None
    return token


def record_use(token):
    """Note that `token` was used now, at most once per LAST_USED_RESOLUTION; commits."""
    now = clock.utcnow()
    result = db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        db.session.commit()
