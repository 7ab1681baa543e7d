"""Service catalogue: statements issued and stored once their month is over

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('svc_statement',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('lines', sa.Text(), nullable=False),
    sa.Column('inputs', sa.Text(), nullable=False),
    sa.Column('total_cents', sa.Integer(), nullable=False),
    sa.Column('issued_by', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('svc_statement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_svc_statement_month'), ['month'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('svc_statement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_svc_statement_month'))
    op.drop_table('svc_statement')
