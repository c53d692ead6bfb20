"""Encryption of secrets at rest (client secrets, OAuth tokens, subscription clientStates).

ENCRYPTION_KEY holds one or more Fernet keys separated by commas: the first encrypts,
all of them decrypt, so a key can be rotated without losing what was stored.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted with any configured key."""


def generate_key():
    return Fernet.generate_key().decode()


def _fernet():
    cached = current_app.extensions.get("ireserve_fernet")
    if cached is None:
        keys = [k.strip() for k in current_app.config["ENCRYPTION_KEY"].split(",") if k.strip()]
        cached = MultiFernet([Fernet(k) for k in keys])
        current_app.extensions["ireserve_fernet"] = cached
    return cached


def encrypt(plaintext):
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext):
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        # The message names no secret: it must be safe to log and show.
        raise SecretUnreadable("a stored secret cannot be decrypted with the configured ENCRYPTION_KEY") from None
