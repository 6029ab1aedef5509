"""delivery engine: one delivery row per (interaction, destination); per-destination lease, rate bucket, breaker

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
import ingest.schema


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('destination_states',
    sa.Column('destination', sa.String(length=100), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('tokens_at', sa.Float(), nullable=False),
    sa.Column('calls_per_delivery', sa.Float(), nullable=False),
    sa.Column('batch_limit', sa.Integer(), nullable=True),
    sa.Column('throttled_until', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('circuit_opened', sa.Integer(), nullable=False),
    sa.Column('circuit_open_until', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('destination', name=op.f('pk_destination_states'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('destination', sa.String(length=100), nullable=False),
    sa.Column('interaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('delivered_revision', sa.Integer(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempts_at_arming', sa.Integer(), nullable=False),
    sa.Column('armed_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_attempt_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('succeeded_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error_class', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('crm_contact_id', sa.String(length=255), nullable=True),
    sa.Column('crm_interaction_id', sa.String(length=255), nullable=True),
    sa.Column('crm_url', sa.Text(), nullable=True),
    sa.Column('created_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_deliveries_interaction_id_interactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_destination_status_next_attempt_at', ['destination', 'status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_deliveries_status_updated_at', ['status', 'updated_at'], unique=False)
        batch_op.create_index('uq_deliveries_interaction_id_destination', ['interaction_id', 'destination'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('uq_deliveries_interaction_id_destination')
        batch_op.drop_index('ix_deliveries_status_updated_at')
        batch_op.drop_index('ix_deliveries_destination_status_next_attempt_at')

    op.drop_table('deliveries')
    op.drop_table('destination_states')
