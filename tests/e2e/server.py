"""Start the Procfile's web command as a real gunicorn server for end-to-end tests."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(process: str = "web") -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            argv = shlex.split(command)
            argv[0] = str(BIN / argv[0]) if (BIN / argv[0]).exists() else argv[0]
            return argv
    raise LookupError(f"no {process} process in Procfile")


def migrate(env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "flask"), "--app", "app.wsgi", "db", "upgrade", "heads"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)


@dataclass
class Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_server(tmp_path: Path, *, loader: bool = False, **extra_env: str) -> Iterator[Server]:
    """The Procfile's web process on a free port; with `loader`, its history loader beside it."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "CLOUDWATCH_ENABLED": "false",
        "HISTORY_JOURNAL_DIR": str(tmp_path / "journal"),
        **extra_env,
    }
    env.pop("TEST_DATABASE_URL", None)
    migrate(env)
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(procfile_command(), cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, port)
    loader_process = None
    if loader:
        loader_process = subprocess.Popen(procfile_command("loader"), cwd=ROOT, env=env,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
    try:
        wait_until_live(server)
        yield server
    finally:
        stop(process)
        if loader_process is not None:
            stop(loader_process)  # after the web process: it loads what the journal still holds
        log.close()


def wait_until_live(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("gunicorn exited during start-up")
        try:
            with urllib.request.urlopen(server.url + "/health/live", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("gunicorn did not become live")
