"""outbound event object

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09 10:00:00.000000

A delegated calendar whose object is changed keeps serving the bookings it already
linked on the former object. Outbound tells those apart from a booking moved to another
object by the object each event was written for, stored here.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbound_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("object_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_outbound_events_object_id_bookable_objects"),
            "bookable_objects",
            ["object_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("outbound_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbound_events_object_id_bookable_objects"), type_="foreignkey")
        batch_op.drop_column("object_id")
