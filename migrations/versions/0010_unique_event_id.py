"""unique event id per organisation

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:10:00.000000

An Outlook event is linked to at most one booking of an organisation. Bookings that
already share an event id are resolved first: the oldest keeps the link, the others are
unlinked (never cancelled) and each change gets a line in the sync log.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FIELD = "outlook_event_id"
# The same expressions the models render (app.models.booking.ExtraText).
EXPRESSIONS = {
    "postgresql": f"(extra ->> '{FIELD}')",
    "sqlite": f"json_extract(extra, '$.{FIELD}')",
}
UNLINKED = {
    "postgresql": f"extra - '{FIELD}'",
    "sqlite": f"json_remove(extra, '$.{FIELD}')",
}

sync_log = sa.table(
    "sync_log",
    sa.column("organisation_id", sa.Integer),
    sa.column("integration_id", sa.Integer),
    sa.column("link_id", sa.Integer),
    sa.column("booking_id", sa.Integer),
    sa.column("event_id", sa.String),
    sa.column("direction", sa.String),
    sa.column("action", sa.String),
    sa.column("reason", sa.Text),
    sa.column("is_error", sa.Boolean),
    sa.column("created_at", sa.DateTime),
)


def upgrade():
    bind = op.get_bind()
    dialect = bind.dialect.name
    expression = EXPRESSIONS[dialect]
    _unlink_duplicates(bind, expression, UNLINKED[dialect])
    op.drop_index("ix_bookings_outlook_event_id", table_name="bookings")
    linked = sa.text(f"{expression} IS NOT NULL")
    op.create_index(
        "uq_bookings_outlook_event_id",
        "bookings",
        ["organisation_id", sa.text(expression)],
        unique=True,
        sqlite_where=linked,
        postgresql_where=linked,
    )


def downgrade():
    op.drop_index("uq_bookings_outlook_event_id", table_name="bookings")
    expression = EXPRESSIONS[op.get_bind().dialect.name]
    op.create_index("ix_bookings_outlook_event_id", "bookings", ["organisation_id", sa.text(expression)], unique=False)


def _unlink_duplicates(bind, expression, unlinked):
    rows = bind.execute(
        sa.text(
            f"SELECT b.id, b.organisation_id, b.object_id, {expression} AS event_id FROM bookings b "
            f"JOIN (SELECT organisation_id AS org, {expression} AS shared FROM bookings "
            f"      WHERE {expression} IS NOT NULL GROUP BY organisation_id, {expression} HAVING COUNT(*) > 1) d "
            f"  ON b.organisation_id = d.org AND {expression} = d.shared "
            "ORDER BY b.organisation_id, event_id, b.created_at, b.id"
        )
    ).all()
    kept = {}
    now = datetime.now(UTC).replace(tzinfo=None)
    for booking_id, organisation_id, object_id, event_id in rows:
        group = (organisation_id, event_id)
        if group not in kept:
            kept[group] = booking_id
            continue
        bind.execute(sa.text(f"UPDATE bookings SET extra = {unlinked} WHERE id = :id"), {"id": booking_id})
        integration_id, link_id = _link_of(bind, organisation_id, object_id)
        bind.execute(
            sync_log.insert().values(
                organisation_id=organisation_id,
                integration_id=integration_id,
                link_id=link_id,
                booking_id=booking_id,
                event_id=event_id,
                direction="inbound",
                action="unlink",
                reason=(
                    f"Unlinked: booking {kept[group]} is linked to the same Outlook event and keeps it "
                    "(an event is linked to one booking only)."
                ),
                is_error=False,
                created_at=now,
            )
        )


def _link_of(bind, organisation_id, object_id):
    """The calendar link (and its integration) that syncs the booking's object, if any."""
    row = bind.execute(
        sa.text(
            "SELECT cl.integration_id, cl.id FROM calendar_links cl "
            "JOIN integrations i ON i.id = cl.integration_id "
            "WHERE i.organisation_id = :org AND cl.object_id = :object ORDER BY cl.id LIMIT 1"
        ),
        {"org": organisation_id, "object": object_id},
    ).first()
    return (row[0], row[1]) if row else (None, None)
