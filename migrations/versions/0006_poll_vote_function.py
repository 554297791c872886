"""poll_cast_vote(): a vote in one database round trip on PostgreSQL

Revision ID: 0006_poll_vote_function
Revises: 0005_history_journal
Create Date: 2026-11-30

The whole vote transaction (Idempotency-Key replay, checks, ballot, tallies, version bump,
remembered answer) as one PL/pgSQL function, so the app sends one statement, in autocommit mode:
the statement is the transaction. The lock order is the one `app/polls/votes.py` documents.
Refusals found before any write return an outcome; the two found after writes (the poll closed
meanwhile: SQLSTATE VT001; the same Idempotency-Key won meanwhile: VT002) raise, which undoes
the statement's writes. SQLite keeps the statements in Python, with the same outcomes.
"""

from alembic import op

revision = "0006_poll_vote_function"
down_revision = "0005_history_journal"
branch_labels = None
depends_on = None

CREATE = r"""
CREATE FUNCTION poll_cast_vote(
    p_poll_id text, p_created_at timestamptz, p_voter_id integer, p_username text,
    p_choices json, p_now timestamptz, p_key text, p_accepted json, p_changed json)
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

    -- FOR KEY SHARE: a deletion (FOR UPDATE) waits for this vote, and this vote for a
    -- deletion, before either holds another row of the poll; votes and closes do not wait on
    -- it. The bump below re-checks "open" on the row it updates.
    SELECT p.allow_vote_change, p.restricted, p.created_at,
           p.closed_at IS NULL AND p.opens_at <= p_now
               AND (p.closes_at IS NULL OR p.closes_at > p_now)
      INTO v_allow, v_restricted, v_created, v_open
      FROM polls p WHERE p.id = p_poll_id
       FOR KEY SHARE;
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
            o_outcome := 'conflict';  -- it vanished with its poll
            RETURN NEXT;
            RETURN;
        END IF;
        UPDATE ballots SET choices = p_choices, updated_at = p_now WHERE id = v_ballot;
    END IF;

    -- 2. The tallies, by ascending option (one lock order for every vote).
    FOR r IN
        SELECT d.idx, sum(d.delta) AS delta FROM (
            SELECT value::integer AS idx, 1 AS delta FROM json_array_elements_text(p_choices)
            UNION ALL
            SELECT value::integer, -1 FROM json_array_elements_text(v_old)) d
        GROUP BY d.idx HAVING sum(d.delta) <> 0 ORDER BY d.idx
    LOOP
        UPDATE poll_tallies t SET votes = t.votes + r.delta
         WHERE t.poll_id = p_poll_id AND t.option_index = r.idx;
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

    -- 4. The poll row last (the hottest lock, held only until the commit), only while open.
    UPDATE polls p SET version = p.version + 1, ballot_count = p.ballot_count + v_new::integer
     WHERE p.id = p_poll_id AND p.closed_at IS NULL AND p.opens_at <= p_now
       AND (p.closes_at IS NULL OR p.closes_at > p_now);
    IF NOT FOUND THEN  -- closed meanwhile: undo the ballot, the tallies and the key's answer
        RAISE EXCEPTION 'poll % closed during the vote', p_poll_id USING ERRCODE = 'VT001';
    END IF;
    o_outcome := CASE WHEN v_new THEN 'accepted' ELSE 'changed' END;
    RETURN NEXT;
END
$$
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS poll_cast_vote("
                   "text, timestamptz, integer, text, json, timestamptz, text, json, json)")
