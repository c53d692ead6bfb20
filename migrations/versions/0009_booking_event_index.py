"""booking event index

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 15:02:11.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The same expressions the models render (app.models.booking.ExtraText).
EXPRESSIONS = {
    "postgresql": "(extra ->> 'outlook_event_id')",
    "sqlite": "json_extract(extra, '$.outlook_event_id')",
}


def upgrade():
    expression = EXPRESSIONS[op.get_bind().dialect.name]
    op.create_index("ix_bookings_outlook_event_id", "bookings", ["organisation_id", sa.text(expression)], unique=False)


def downgrade():
    op.drop_index("ix_bookings_outlook_event_id", table_name="bookings")
