"""contact store: contacts, unique identities, value history, interactions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
import ingest.schema


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merged_into', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('merged_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('merged_by_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('company', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('primary_email', sa.String(length=512), nullable=True),
    sa.Column('primary_phone', sa.String(length=512), nullable=True),
    sa.Column('created_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merged_into'], ['contacts.id'], name=op.f('fk_contacts_merged_into_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_merged_into', ['merged_into'], unique=False)

    op.create_table('contact_identities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('first_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('created_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_identities_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_identities'))
    )
    with op.batch_alter_table('contact_identities', schema=None) as batch_op:
        batch_op.create_index('ix_contact_identities_contact_id', ['contact_id'], unique=False)
        batch_op.create_index('uq_contact_identities_kind_value_scope', ['kind', 'value', 'scope'], unique=True)

    op.create_table('contact_values',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('field', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('value_hash', sa.String(length=64), nullable=False),
    sa.Column('normalised', sa.String(length=512), nullable=True),
    sa.Column('first_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_position', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('last_position', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_values_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_values'))
    )
    with op.batch_alter_table('contact_values', schema=None) as batch_op:
        batch_op.create_index('ix_contact_values_field_value_hash', ['field', 'value_hash'], unique=False)
        batch_op.create_index('uq_contact_values_contact_id_field_value_hash', ['contact_id', 'field', 'value_hash'], unique=True)

    op.create_table('interactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('natural_key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.Text(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('occurred_at', ingest.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('field_sources', sa.JSON(), nullable=False),
    sa.Column('created_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ingest.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_interactions_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions'))
    )
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_contact_id_occurred_at', ['contact_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_interactions_provider_updated_at', ['provider', 'updated_at'], unique=False)
        batch_op.create_index('uq_interactions_source_provider_natural_key', ['source', 'provider', 'natural_key'], unique=True)

    op.create_table('interaction_events',
    sa.Column('interaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('record_index', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_interaction_events_interaction_id_interactions')),
    sa.PrimaryKeyConstraint('interaction_id', 'event_id', name=op.f('pk_interaction_events'))
    )


def downgrade() -> None:
    op.drop_table('interaction_events')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('uq_interactions_source_provider_natural_key')
        batch_op.drop_index('ix_interactions_provider_updated_at')
        batch_op.drop_index('ix_interactions_contact_id_occurred_at')

    op.drop_table('interactions')
    with op.batch_alter_table('contact_values', schema=None) as batch_op:
        batch_op.drop_index('uq_contact_values_contact_id_field_value_hash')
        batch_op.drop_index('ix_contact_values_field_value_hash')

    op.drop_table('contact_values')
    with op.batch_alter_table('contact_identities', schema=None) as batch_op:
        batch_op.drop_index('uq_contact_identities_kind_value_scope')
        batch_op.drop_index('ix_contact_identities_contact_id')

    op.drop_table('contact_identities')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_merged_into')

    op.drop_table('contacts')
