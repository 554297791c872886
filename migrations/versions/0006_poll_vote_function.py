"""poll_cast_vote(): a vote in one database round trip; vote counters split into shards

Revision ID: 0006_poll_vote_function
Revises: 0005_history_journal
Create Date: 2026-11-30

The whole vote transaction (Idempotency-Key replay, checks, ballot, tallies, version, remembered
answer) as one PL/pgSQL function, so the app sends one statement, in autocommit mode: the
statement is the transaction. Refusals found before any write return an outcome; the two found
after writes (the same Idempotency-Key won meanwhile: SQLSTATE VT002; the poll gone: VT001)
raise, which undoes the statement's writes. SQLite keeps the statements in Python, with the
same outcomes.

Counters in shards: a vote adds to the tally rows and the counter row of its shard (voter id
modulo the app's POLL_SHARDS), so votes on one poll do not queue on one row through their
commits. `poll_tallies` gains `shard` (in its primary key); `poll_counters` holds per shard the
votes' share of the poll's version (`changes`) and ballot count (`ballots`). A poll's version is
`polls.version` (bumped by a close) plus its changes; its ballot count `polls.ballot_count`
plus its ballots; an option's votes the sum over shards. The poll row is only read, under a
FOR SHARE lock that votes share: a close or a deletion waits for the votes in flight, and votes
after it wait for it and then see the poll closed (or gone).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_poll_vote_function"
down_revision = "0005_history_journal"
branch_labels = None
depends_on = None

CREATE = r"""
CREATE FUNCTION poll_cast_vote(
    p_poll_id text, p_created_at timestamptz, p_voter_id integer, p_username text,
    p_choices json, p_now timestamptz, p_key text, p_accepted json, p_changed json,
    p_shard integer)
RETURNS TABLE (o_outcome text, o_status integer, o_body json, o_key_poll_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_allow boolean;
    v_restricted boolean;
    v_created timestamptz;
    v_open boolean;
    v_ballot bigint;
    v_old json := '[]';
    v_new boolean := false;
    r record;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT k.poll_id, k.status, k.body INTO o_key_poll_id, o_status, o_body
          FROM poll_idempotency_keys k WHERE k.user_id = p_voter_id AND k.key = p_key;
        IF FOUND THEN
            o_outcome := 'replay';
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    -- FOR SHARE, shared by every vote: a close or a deletion (which update or lock the row)
    -- waits for the votes in flight, and votes after it wait for it and then see it.
    SELECT p.allow_vote_change, p.restricted, p.created_at,
           p.closed_at IS NULL AND p.opens_at <= p_now
               AND (p.closes_at IS NULL OR p.closes_at > p_now)
      INTO v_allow, v_restricted, v_created, v_open
      FROM polls p WHERE p.id = p_poll_id
       FOR SHARE;
    IF NOT FOUND OR v_created <> p_created_at THEN
        o_outcome := 'stale';  -- deleted, or deleted and created again with the same id
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_restricted AND NOT EXISTS (
            SELECT 1 FROM poll_voters v WHERE v.poll_id = p_poll_id AND v.username = p_username)
    THEN
        o_outcome := 'not_a_voter';
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT v_open THEN
        o_outcome := 'not_open';
        RETURN NEXT;
        RETURN;
    END IF;

    -- 1. The voter's ballot (UNIQUE(poll_id, voter_id): one per voter).
    INSERT INTO ballots (poll_id, voter_id, choices, created_at, updated_at)
    VALUES (p_poll_id, p_voter_id, p_choices, p_now, p_now)
    ON CONFLICT (poll_id, voter_id) DO NOTHING
    RETURNING id INTO v_ballot;
    IF v_ballot IS NOT NULL THEN
        v_new := true;
    ELSE
        IF p_key IS NOT NULL THEN  -- a concurrent request with this key may have just won
            SELECT k.poll_id, k.status, k.body INTO o_key_poll_id, o_status, o_body
              FROM poll_idempotency_keys k WHERE k.user_id = p_voter_id AND k.key = p_key;
            IF FOUND THEN
                o_outcome := 'replay';
                RETURN NEXT;
                RETURN;
            END IF;
        END IF;
        IF NOT v_allow THEN
            o_outcome := 'duplicate';
            RETURN NEXT;
            RETURN;
        END IF;
        SELECT b.id, b.choices INTO v_ballot, v_old
          FROM ballots b WHERE b.poll_id = p_poll_id AND b.voter_id = p_voter_id
          FOR UPDATE;
        IF NOT FOUND THEN
            o_outcome := 'conflict';
            RETURN NEXT;
            RETURN;
        END IF;
        UPDATE ballots SET choices = p_choices, updated_at = p_now WHERE id = v_ballot;
    END IF;

    -- 2. This shard's tallies, by ascending option (one lock order for every vote).
    FOR r IN
        SELECT d.idx, sum(d.delta) AS delta FROM (
            SELECT value::integer AS idx, 1 AS delta FROM json_array_elements_text(p_choices)
            UNION ALL
            SELECT value::integer, -1 FROM json_array_elements_text(v_old)) d
        GROUP BY d.idx HAVING sum(d.delta) <> 0 ORDER BY d.idx
    LOOP
        INSERT INTO poll_tallies AS t (poll_id, option_index, shard, votes)
        VALUES (p_poll_id, r.idx, p_shard, r.delta)
        ON CONFLICT (poll_id, option_index, shard) DO UPDATE SET votes = t.votes + r.delta;
    END LOOP;

    -- 3. The answer for the Idempotency-Key (the caller's own row).
    o_status := CASE WHEN v_new THEN 201 ELSE 200 END;
    o_body := CASE WHEN v_new THEN p_accepted ELSE p_changed END;
    IF p_key IS NOT NULL THEN
        INSERT INTO poll_idempotency_keys (user_id, key, poll_id, status, body, created_at)
        VALUES (p_voter_id, p_key, p_poll_id, o_status, o_body, p_now)
        ON CONFLICT (user_id, key) DO NOTHING;
        IF NOT FOUND THEN  -- the same key won meanwhile: undo this vote, answer with that one
            RAISE EXCEPTION 'Idempotency-Key raced' USING ERRCODE = 'VT002';
        END IF;
    END IF;

    -- 4. This shard's counter: the poll's version and ballot count move with it.
    INSERT INTO poll_counters AS c (poll_id, shard, changes, ballots)
    VALUES (p_poll_id, p_shard, 1, v_new::integer)
    ON CONFLICT (poll_id, shard)
    DO UPDATE SET changes = c.changes + 1, ballots = c.ballots + v_new::integer;
    o_outcome := CASE WHEN v_new THEN 'accepted' ELSE 'changed' END;
    RETURN NEXT;
END
$$
"""
DROP = ("DROP FUNCTION IF EXISTS poll_cast_vote("
        "text, timestamptz, integer, text, json, timestamptz, text, json, json, integer)")


def upgrade():
    op.create_table(
        "poll_counters",
        sa.Column("poll_id", sa.String(length=64), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("ballots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_poll_counters_poll_id_polls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("poll_id", "shard", name=op.f("pk_poll_counters")),
    )
    with op.batch_alter_table("poll_tallies") as batch:
        batch.add_column(sa.Column("shard", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint("pk_poll_tallies", type_="primary")
        batch.create_primary_key("pk_poll_tallies", ["poll_id", "option_index", "shard"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP)
    # Fold the shards back into the poll row and shard 0.
    op.execute("UPDATE polls SET version = version + COALESCE((SELECT sum(c.changes) FROM "
               "poll_counters c WHERE c.poll_id = polls.id), 0), ballot_count = ballot_count + "
               "COALESCE((SELECT sum(c.ballots) FROM poll_counters c "
               "WHERE c.poll_id = polls.id), 0)")
    op.execute("UPDATE poll_tallies SET votes = (SELECT sum(t.votes) FROM poll_tallies t WHERE "
               "t.poll_id = poll_tallies.poll_id AND t.option_index = poll_tallies.option_index) "
               "WHERE shard = 0")
    op.execute("DELETE FROM poll_tallies WHERE shard <> 0")
    with op.batch_alter_table("poll_tallies") as batch:
        batch.drop_constraint("pk_poll_tallies", type_="primary")
        batch.create_primary_key("pk_poll_tallies", ["poll_id", "option_index"])
        batch.drop_column("shard")
    op.drop_table("poll_counters")
