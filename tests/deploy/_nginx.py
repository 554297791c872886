"""Run an nginx configuration for real in front of a stub upstream (tests of the proxy's limits).

The production file (.platform/nginx/nginx.conf) is rewritten only where it names paths that
exist on an Elastic Beanstalk instance; the rehearsal's is rendered by tools/staging/stack.py as
`make staging` renders it. Both then answer on 127.0.0.1 like the real thing.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.processes import stop
from tools.faults import drill_long_lines

from ._cfn import ROOT

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)


class _Upstream(BaseHTTPRequestHandler):
    """gunicorn's stand-in: reads the body, answers 200 with what it saw."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = f"upstream saw {len(self.requestline)} bytes of request line\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _wait_listening(port: int, proc: subprocess.Popen, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx is not listening on {port}")


@contextmanager
def _run(argv: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(port, proc)
        yield
    finally:
        stop(proc, signal.SIGQUIT, timeout=10)  # SIGQUIT: nginx's graceful shutdown
        if proc.stderr:
            proc.stderr.close()


def production_conf(tmp: Path, listen_port: int, upstream_port: int) -> Path:
    """.platform/nginx/nginx.conf with EB's generated location pointing at the stub upstream."""
    conf_dir = tmp / "conf"
    (conf_dir / "conf.d" / "elasticbeanstalk").mkdir(parents=True)
    (conf_dir / "conf.d" / "elasticbeanstalk" / "00_application.conf").write_text(
        "location / {\n"
        f"    proxy_pass http://127.0.0.1:{upstream_port};\n"
        "    proxy_http_version 1.1;\n"
        "    proxy_set_header Connection \"\";\n"
        "}\n", encoding="utf-8")
    (conf_dir / "mime.types").write_text("types { text/html html; }\n", encoding="utf-8")
    text = (ROOT / ".platform" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^user\s+[^;]+;", "", text)
    text = text.replace("/var/log/nginx/", f"{tmp}/")
    text = text.replace("/var/run/nginx.pid", f"{tmp}/nginx.pid")
    text = text.replace("/etc/nginx/mime.types", str(conf_dir / "mime.types"))
    text = text.replace("listen        80 default_server;", f"listen 127.0.0.1:{listen_port};")
    text = text.replace("http {", "http {\n    client_body_temp_path " + str(tmp / "body") + ";\n"
                        "    proxy_temp_path " + str(tmp / "proxy") + ";", 1)
    path = conf_dir / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def production(tmp: Path) -> Iterator[str]:
    """The production proxy on http://127.0.0.1:<port>, in front of the stub upstream."""
    assert NGINX, "nginx is not installed"
    port = free_port()
    with upstream() as up:
        conf = production_conf(tmp, port, up)
        argv = [NGINX, "-p", str(conf.parent), "-c", str(conf), "-e", str(tmp / "error.log"),
                "-g", "daemon off;"]
        with _run(argv, port):
            yield f"127.0.0.1:{port}"


@dataclass
class Rehearsal:
    host: str
    port: int
    tls: ssl.SSLContext


@contextmanager
def rehearsal(tmp: Path) -> Iterator[Rehearsal]:
    """The rehearsal's load balancer (HTTPS) as tools/staging/stack.py renders it, before the
    stub."""
    from tools.staging import stack  # the rehearsal's own renderer; imported only where nginx runs

    assert NGINX, "nginx is not installed"
    with upstream() as up:
        cfg = stack.Config(run_dir=tmp / "run", app_ports=[up], bare_ports=[],
                           https_port=free_port(), http_port=free_port())
        (cfg.run_dir / "logs").mkdir(parents=True)
        stack.make_certificate(cfg)
        conf = stack.render_nginx(cfg)
        argv = [NGINX, "-p", f"{cfg.run_dir}/", "-c", str(conf)]
        with _run(argv, cfg.https_port):
            yield Rehearsal("127.0.0.1", cfg.https_port, stack.INSECURE_TLS)


def connect(target: str | Rehearsal, timeout: float = 10) -> socket.socket:
    if isinstance(target, Rehearsal):
        raw = socket.create_connection((target.host, target.port), timeout=timeout)
        return target.tls.wrap_socket(raw, server_hostname=target.host)
    host, port = target.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def request_line_status(target: str | Rehearsal, path: str) -> tuple[int, float]:
    """(status, seconds) for `GET <path>` (the drill's own client:
    tools/faults/drill_long_lines.py)."""
    return drill_long_lines.request_line_status(connect(target), path)
