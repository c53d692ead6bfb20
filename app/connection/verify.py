"""Checking saved application settings with Microsoft: one app-only token, requested by a job.

Saving the settings of an application-mode integration asks for this check
(:func:`queue_settings_check`) instead of waiting for someone to press *Test connection*.
A token marks the integration connected as the connection test does, which queues the
subscriptions of its enabled rooms and, through them, their first syncs. A refusal stores
Microsoft's reason on the integration, for its page.
"""

import logging

from app.connection.check import mark_connected
from app.extensions import db
from app.graph.tokens import ReconnectRequired, record_reconnect_required, token_provider_for
from app.jobs import queue
from app.jobs.handlers import handler
from app.models import Integration, Job
from app.models.job import JOB_QUEUED, JOB_RUNNING

log = logging.getLogger(__name__)

#: The job kind of a settings check; its key is the integration id.
SETTINGS_CHECK = "settings_check"


def queue_settings_check(integration):
    """Ask for a settings check of *integration*; coalesces with one pending. Joins the caller's transaction."""
    queue.enqueue(SETTINGS_CHECK, str(integration.id))


def settings_check_pending(integration):
    """Whether a settings check of *integration* is queued or running (retries included)."""
    pending = db.select(Job.id).where(
        Job.kind == SETTINGS_CHECK, Job.key == str(integration.id), Job.state.in_((JOB_QUEUED, JOB_RUNNING))
    )
    return bool(db.session.scalar(db.select(pending.exists())))


@handler(SETTINGS_CHECK)
def run_settings_check(key, payload):
    """Request one client-credentials token for integration *key*; mark it connected or store the refusal. Commits.

    A token endpoint that is down fails the job, which the queue retries.
    """
    integration = db.session.get(Integration, int(key))
    if integration is None or integration.is_delegated:
        return  # removed, or switched to signing in, since it was saved
    try:
        # A fresh token, not a cached one: it proves the settings as saved now.
        token_provider_for(integration).refresh_token()
    except ReconnectRequired as refusal:
        record_reconnect_required(integration, refusal.reason)
        db.session.commit()
        log.info("Settings of integration %s refused by Microsoft: %s", integration.id, refusal.reason)
        return
    mark_connected(integration)
    log.info("Settings of integration %s work; it is connected", integration.id)
