"""URLs that Microsoft calls back: built from PUBLIC_BASE_URL, never from the request's host.

Behind a proxy the request host is often an internal name that Azure cannot reach, and
the redirect URI must match the app registration to the letter.
"""

from flask import current_app

OAUTH_CALLBACK_PATH = "/oauth/callback"
NOTIFICATION_PATH = "/webhooks/graph"
LIFECYCLE_PATH = "/webhooks/graph/lifecycle"


def public_url(path):
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def oauth_redirect_uri():
    return public_url(OAUTH_CALLBACK_PATH)


def notification_url():
    return public_url(NOTIFICATION_PATH)


def lifecycle_notification_url():
    return public_url(LIFECYCLE_PATH)
