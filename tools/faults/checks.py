"""After-fault consistency checks against staging's database, from a load run's ledger.

* every solve answered 2xx (its X-Request-ID is in the ledger) has a history row;
* every vote answered 2xx is counted exactly once: each voter's ballot holds the choice of their
  last 2xx vote, voters without a 2xx vote have no ballot, and the tallies equal the ballots.

A vote whose answer was lost (connection error, 5xx from the proxy) may or may not have reached
the database; such voters are reported as "uncertain" and not held against the check.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def _connect(database_url: str):
    import psycopg2

    return psycopg2.connect(database_url, connect_timeout=5)


def _exists(cur, table: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",))
    return bool(cur.fetchone()[0])


def check_history(cur, ledger: dict) -> tuple[bool | None, str]:
    if not _exists(cur, "history_entries"):
        return None, "history: not yet available (no history_entries table)"
    ids = ledger.get("solves", [])
    if not ids:
        return True, "history: no answered solves to check"
    cur.execute("SELECT DISTINCT request_id FROM history_entries WHERE request_id = ANY(%s)",
                (ids,))
    found = {row[0] for row in cur.fetchall()}
    missing = [rid for rid in ids if rid not in found]
    if missing:
        return False, (f"history: {len(missing)} of {len(ids)} answered solves have no row "
                       f"(e.g. {missing[:3]})")
    return True, f"history: all {len(ids)} answered solves have a row"


def check_votes(cur, ledger: dict) -> tuple[bool | None, str]:
    poll_id = ledger.get("poll_id")
    if not _exists(cur, "ballots") or not _exists(cur, "poll_tallies"):
        return None, "votes: not yet available (no ballots/poll_tallies tables)"
    if not poll_id:
        return None, "votes: no shared poll in this run (votes endpoint not available)"
    cur.execute("SELECT u.username, b.choices FROM ballots b JOIN users u ON u.id = b.voter_id "
                "WHERE b.poll_id = %s", (poll_id,))
    ballots = {name: json.loads(c) if isinstance(c, str) else c for name, c in cur.fetchall()}
    cur.execute("SELECT option_index, sum(votes) FROM poll_tallies WHERE poll_id = %s "
                "GROUP BY option_index", (poll_id,))  # one row per option and shard
    tallies = {index: votes for index, votes in cur.fetchall() if votes}
    problems, uncertain, accepted = [], 0, 0
    for voter, entry in ledger.get("votes", {}).items():
        accepted += entry["ok"]
        if entry["unknown_after"]:
            uncertain += 1
            continue
        if entry["ok"] and ballots.get(voter) != entry["last_ok"]:
            problems.append(f"{voter}: ballot {ballots.get(voter)} != last 2xx {entry['last_ok']}")
        if not entry["ok"] and voter in ballots:
            problems.append(f"{voter}: ballot without any 2xx vote")
    strangers = set(ballots) - set(ledger.get("votes", {}))
    if strangers:
        problems.append(f"{len(strangers)} ballots from accounts that never voted")
    expected = Counter(choice for choices in ballots.values() for choice in choices)
    if dict(expected) != tallies:
        problems.append(f"tallies {tallies} != ballots {dict(expected)}")
    if problems:
        return False, f"votes: {len(problems)} problems: {problems[:3]}"
    return True, (f"votes: {accepted} 2xx votes from {len(ballots)} voters, each counted once "
                  f"(tallies {dict(sorted(tallies.items()))}; {uncertain} voters uncertain)")


def check(database_url: str, ledger_path: Path) -> list[tuple[bool | None, str]]:
    """(verdict, line) per check: None means "not yet available" and fails nothing."""
    if not ledger_path.exists():
        return [(False, "no ledger written by the load run")]
    ledger = json.loads(ledger_path.read_text())
    conn = _connect(database_url)
    try:
        with conn.cursor() as cur:
            results = [check_history(cur, ledger), check_votes(cur, ledger)]
    finally:
        conn.close()
    return results
