"""FranceConnect brokering (civil status on accounts, federated identities, signed UserInfo)
and delegation (mandates, delegated grants, clients opting in)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('idp_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gender', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column('birthplace', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column('birthcountry', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column('civil_status_verified_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('idp_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('userinfo_signed_response_alg', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column('delegation_allowed', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('idp_mandate',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('mandator_id', sa.Uuid(), nullable=False),
    sa.Column('mandatary_id', sa.Uuid(), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('relationship', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('clients', sa.Text(), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmation_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('confirmation_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmation_attempts', sa.Integer(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['mandator_id'], ['idp_user.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mandatary_id'], ['idp_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('idp_mandate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_mandate_mandator_id'), ['mandator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_idp_mandate_mandatary_id'), ['mandatary_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_idp_mandate_status'), ['status'], unique=False)
    with op.batch_alter_table('idp_grant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('mandate_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_idp_grant_mandate_id'), ['mandate_id'], unique=False)
        batch_op.create_foreign_key('fk_idp_grant_actor_id_idp_user', 'idp_user', ['actor_id'], ['id'], ondelete='CASCADE')
    op.create_table('idp_federated_identity',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['idp_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('issuer', 'subject', name='uq_idp_federated_issuer_sub')
    )
    with op.batch_alter_table('idp_federated_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_federated_identity_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idp_grant', schema=None) as batch_op:
        batch_op.drop_constraint('fk_idp_grant_actor_id_idp_user', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_idp_grant_mandate_id'))
        batch_op.drop_column('mandate_id')
        batch_op.drop_column('actor_id')
    with op.batch_alter_table('idp_mandate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_mandate_status'))
        batch_op.drop_index(batch_op.f('ix_idp_mandate_mandatary_id'))
        batch_op.drop_index(batch_op.f('ix_idp_mandate_mandator_id'))
    op.drop_table('idp_mandate')
    with op.batch_alter_table('idp_federated_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_federated_identity_user_id'))
    op.drop_table('idp_federated_identity')
    with op.batch_alter_table('idp_client', schema=None) as batch_op:
        batch_op.drop_column('delegation_allowed')
        batch_op.drop_column('userinfo_signed_response_alg')
    with op.batch_alter_table('idp_user', schema=None) as batch_op:
        batch_op.drop_column('civil_status_verified_at')
        batch_op.drop_column('birthcountry')
        batch_op.drop_column('birthplace')
        batch_op.drop_column('gender')
