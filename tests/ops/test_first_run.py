"""What a newcomer sees on the first `make run` (issue 12, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_migrating_prints_no_alembic_plugin_lines(tmp_path: Path) -> None:
    """`make run` migrates first; alembic's plugin set-up used to print 14 INFO lines."""
    env = {**os.environ, "APP_ENV": "development",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'first.sqlite3'}",
           "HISTORY_JOURNAL_DIR": str(tmp_path / "journal")}
    env.pop("TEST_DATABASE_URL", None)
    flask = Path(sys.executable).parent / "flask"
    result = subprocess.run([str(flask), "--app", "app.wsgi", "db", "upgrade", "heads"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "plugin" not in output.lower(), output
    assert "Running upgrade" in output  # the migrations themselves are still reported
