"""raw events store

Revision ID: 0001
Revises: 
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
import ingest.schema


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('query_string', sa.Text(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=True),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('remote_addr', sa.String(length=64), nullable=False),
    sa.Column('received_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duplicate_count', sa.Integer(), nullable=False),
    sa.Column('last_duplicate_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('enqueued_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('processed_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_class', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_received_at', ['received_at'], unique=False)
        batch_op.create_index('ix_events_source_received_at', ['source', 'received_at'], unique=False)
        batch_op.create_index('ix_events_status_enqueued_at', ['status', 'enqueued_at'], unique=False)
        batch_op.create_index('uq_events_source_dedup_key', ['source', 'dedup_key'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('uq_events_source_dedup_key')
        batch_op.drop_index('ix_events_status_enqueued_at')
        batch_op.drop_index('ix_events_source_received_at')
        batch_op.drop_index('ix_events_received_at')

    op.drop_table('events')
