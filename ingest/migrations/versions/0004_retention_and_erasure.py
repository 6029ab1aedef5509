"""retention and erasure: events.purged_at, and the erasures tombstone table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
import ingest.schema


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('erased_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('command', sa.String(length=200), nullable=False),
    sa.Column('matched_by', sa.JSON(), nullable=False),
    sa.Column('contact_ids', sa.JSON(), nullable=False),
    sa.Column('interaction_ids', sa.JSON(), nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('delivery_ids', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('crm_records', sa.JSON(), nullable=False),
    sa.Column('in_flight_event_ids', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasures'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', ingest.schema.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('purged_at')

    op.drop_table('erasures')
