"""poll_cast_vote_by_token(): the token check and the vote in one statement

Revision ID: 0007_vote_with_token_check
Revises: 0006_poll_vote_function
Create Date: 2026-11-30

A vote authenticated by a Bearer access token this process verified before used to cost two
round trips: the token check (user, token revoked, login revoked: app/auth/tokens.py) and
poll_cast_vote(). This function does the same check first, in the same statement, and only then
calls poll_cast_vote() with the user's name: one round trip per vote. A refused token returns the
outcome 'revoked' or 'unknown_user' and writes nothing. The check mirrors `tokens._TOKEN_CHECK`
(tests/auth and tests/polls hold both to the same answers for every kind of revocation).
"""

from alembic import op

revision = "0007_vote_with_token_check"
down_revision = "0006_poll_vote_function"
branch_labels = None
depends_on = None

CREATE = r"""
CREATE FUNCTION poll_cast_vote_by_token(
    p_user_id integer, p_jti text, p_family_id text,
    p_poll_id text, p_created_at timestamptz, p_choices json, p_now timestamptz, p_key text,
    p_accepted json, p_changed json, p_shard integer)
RETURNS TABLE (o_outcome text, o_status integer, o_body json, o_key_poll_id text,
               o_username text, o_role text, o_user_created_at timestamptz,
               o_user_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    u record;
BEGIN
    -- 1. The token check, as tokens._TOKEN_CHECK: the user by id, its login (token family)
    --    by id, the token by its unique jti.
    SELECT us.username, us.role, us.created_at, us.updated_at,
           EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = p_jti) AS token_revoked,
           f.id AS family_id, f.revoked_at AS family_revoked_at
      INTO u
      FROM users us
      LEFT JOIN token_families f ON f.id = p_family_id AND f.user_id = us.id
     WHERE us.id = p_user_id;
    IF NOT FOUND THEN
        o_outcome := 'unknown_user';
        RETURN NEXT;
        RETURN;
    END IF;
    IF u.token_revoked OR (p_family_id IS NOT NULL
                           AND (u.family_id IS NULL OR u.family_revoked_at IS NOT NULL)) THEN
        o_outcome := 'revoked';
        RETURN NEXT;
        RETURN;
    END IF;
    o_username := u.username;
    o_role := u.role;
    o_user_created_at := u.created_at;
    o_user_updated_at := u.updated_at;
    -- 2. The vote.
    SELECT v.o_outcome, v.o_status, v.o_body, v.o_key_poll_id
      INTO o_outcome, o_status, o_body, o_key_poll_id
      FROM poll_cast_vote(p_poll_id, p_created_at, p_user_id, u.username, p_choices, p_now,
                          p_key, p_accepted, p_changed, p_shard) v;
    RETURN NEXT;
END
$$
"""
DROP = ("DROP FUNCTION IF EXISTS poll_cast_vote_by_token(integer, text, text, text, timestamptz, "
        "json, timestamptz, text, json, json, integer)")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP)
