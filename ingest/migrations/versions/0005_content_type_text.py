"""events.content_type as text: a Content-Type of any length is stored, not refused

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

As VARCHAR(255), an authenticated request whose Content-Type ran past 255 characters was refused by PostgreSQL
(SQLite never enforced the length), answered 503 and retried by its provider forever. On PostgreSQL the change is
binary-compatible (no table rewrite); SQLite's batch mode copies the table once.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('content_type', existing_type=sa.String(length=255), type_=sa.Text(),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('content_type', existing_type=sa.Text(), type_=sa.String(length=255),
                              existing_nullable=False)
