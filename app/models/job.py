"""Durable background jobs and the lease that elects one scheduler among all processes."""

import json

from sqlalchemy import CheckConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.database.column_types import UTCDateTime
from app.extensions import db

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_FAILED = "failed"
JOB_STATES = (JOB_QUEUED, JOB_RUNNING, JOB_FAILED)


def _only_in_state(state):
    """Partial-index condition, spelled for both databases the product runs on."""
    condition = text(f"state = '{state}'")
    return {"sqlite_where": condition, "postgresql_where": condition}


class Job(db.Model):
    """One unit of background work, identified by (kind, key), e.g. ("sync_link", "42").

    A job is `queued` (due at `run_at`, which lies in the future while it waits for a
    retry), `running` (claimed by `claimed_by` until `lease_expires_at`) or `failed`
    (parked after its last attempt, `last_error` says why). Finished jobs are deleted.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'failed')", name="state_known"),
        # The database itself keeps at most one pending and one running job per (kind, key):
        # coalescing and "one run per key at a time" hold across processes without locks.
        Index("uq_jobs_queued_kind_key", "kind", "key", unique=True, **_only_in_state(JOB_QUEUED)),
        Index("uq_jobs_running_kind_key", "kind", "key", unique=True, **_only_in_state(JOB_RUNNING)),
        Index("ix_jobs_state_run_at", "state", "run_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    key: Mapped[str] = mapped_column(String(200))
    # JSON text, written with sorted keys so equal payloads compare equal as text.
    payload_json: Mapped[str] = mapped_column("payload", Text, default="{}")
    state: Mapped[str] = mapped_column(String(10), default=JOB_QUEUED)
    run_at = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at = mapped_column(UTCDateTime)
    lease_expires_at = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_at = mapped_column(UTCDateTime)
    created_at = mapped_column(UTCDateTime, nullable=False)

    @property
    def payload(self):
        return json.loads(self.payload_json or "{}")

    def __repr__(self):
        return f"<Job {self.id} {self.kind}:{self.key} {self.state} attempts={self.attempts}>"


class SchedulerLease(db.Model):
    """Who may run the periodic jobs: the holder of an unexpired lease row.

    `expires_at`, `acquired_at` and `last_tick_at` come from the database clock, so the
    hosts taking turns never compare their own clocks with each other.
    """

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    acquired_at = mapped_column(UTCDateTime)
    expires_at = mapped_column(UTCDateTime)
    last_tick_at = mapped_column(UTCDateTime)
