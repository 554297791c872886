"""The nginx override in .platform/nginx/: limits match the app; timeouts match gunicorn, ALB;
slow-client protections match the rehearsal's proxy (tools/staging/nginx.conf.template).

Where nginx is installed, both configurations also run for real in front of a stub upstream:
the 16 KB request-line cap (issue 17 item 9) and the per-address connection limit are checked
through the production file and through the rehearsal's load balancer (paths that exist only
on an Elastic Beanstalk instance are redirected into a temporary directory).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from app.errors import PROBLEM_TYPE_PREFIX, STATUS_SLUGS
from tools.faults import drill_long_lines

from . import _nginx
from ._cfn import ROOT, environment_option_settings

NGINX_DIR = ROOT / ".platform" / "nginx"
NGINX_CONF = NGINX_DIR / "nginx.conf"
STAGING_CONF = ROOT / "tools" / "staging" / "nginx.conf.template"
GUNICORN_TIMEOUT_S = 60  # gunicorn.conf.py default `timeout`
GUNICORN_KEEPALIVE_S = 75  # gunicorn.conf.py default `keepalive`
MAX_CONTENT_LENGTH = 16 * 1024 * 1024  # app default MAX_CONTENT_LENGTH
ALB_MAX_REQUEST_LINE = 16 * 1024  # ALB limit for the request line and for one header

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _config_text() -> str:
    files = [NGINX_CONF, *sorted((NGINX_DIR / "conf.d").glob("**/*.conf"))]
    return _strip_comments("\n".join(p.read_text(encoding="utf-8") for p in files if p.exists()))


def directive(name: str, text: str | None = None) -> list[str]:
    values = re.findall(rf"(?m)^\s*{name}\s+([^;]+);", _config_text() if text is None else text)
    assert values, f"{name} is not set"
    assert len(values) == 1, f"{name} is set {len(values)} times"
    return values[0].split()


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * UNITS[unit.lower()]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smh]?)", value).groups()
    return int(number) * TIME_UNITS[unit]


def alb_idle_timeout() -> int:
    for ns, name, value in environment_option_settings():
        if ns == "aws:elbv2:loadbalancer" and name == "IdleTimeout":
            return int(value)
    return 60  # ALB default


@pytest.mark.parametrize("path", [NGINX_CONF, STAGING_CONF])
def test_access_logs_leave_out_query_strings(path: Path) -> None:
    """Legacy GETs carry the problem in the query and `?api_key=` a secret: log the path only."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    formats = re.findall(r"log_format\s+\w+\s+((?:'[^']*'\s*)+);", text)
    assert formats, f"no log_format in {path.name}"
    for fmt in formats:
        assert "$uri" in fmt
        for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string",
                         "$arg_"):
            assert variable not in fmt, f"{variable} in {path.name}'s log_format"


def test_body_limit_matches_max_content_length() -> None:
    (value,) = directive("client_max_body_size")
    assert value == "16m"
    assert size(value) == MAX_CONTENT_LENGTH


def test_header_buffers_admit_the_alb_request_line() -> None:
    number, buffer = directive("large_client_header_buffers")
    assert int(number) >= 2
    assert size(buffer) >= ALB_MAX_REQUEST_LINE


def test_proxy_timeouts_outlast_gunicorn() -> None:
    (read,) = directive("proxy_read_timeout")
    (send,) = directive("proxy_send_timeout")
    assert seconds(read) >= GUNICORN_TIMEOUT_S
    assert seconds(send) >= GUNICORN_TIMEOUT_S


def test_timeout_chain_with_the_load_balancer() -> None:
    """ALB idle > nginx read timeout; nginx keep-alive > ALB idle (else stray 502s)."""
    idle = alb_idle_timeout()
    (read,) = directive("proxy_read_timeout")
    (keepalive,) = directive("keepalive_timeout")
    assert seconds(read) < idle < seconds(keepalive)
    assert GUNICORN_KEEPALIVE_S > 60, "gunicorn must outlive nginx's upstream keep-alive (60 s)"


def test_keeps_elastic_beanstalk_includes() -> None:
    text = _config_text()
    assert "include       conf.d/*.conf;" in text or re.search(r"include\s+conf\.d/\*\.conf;", text)
    server = text[text.index("server {") :]
    assert re.search(r"include\s+conf\.d/elasticbeanstalk/\*\.conf;", server)


@pytest.mark.skipif(_nginx.NGINX is None, reason="nginx is not installed")
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    (conf_dir / "conf.d" / "elasticbeanstalk").mkdir(parents=True)
    # Stand-in for the location EB generates for the Procfile's web process.
    (conf_dir / "conf.d" / "elasticbeanstalk" / "00_application.conf").write_text(
        "location / {\n    proxy_pass http://127.0.0.1:8000;\n    proxy_http_version 1.1;\n}\n",
        encoding="utf-8",
    )
    (conf_dir / "mime.types").write_text("types { text/html html; }\n", encoding="utf-8")
    text = NGINX_CONF.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^user\s+[^;]+;", "", text)
    text = text.replace("/var/log/nginx/", f"{tmp_path}/")
    text = text.replace("/var/run/nginx.pid", f"{tmp_path}/nginx.pid")
    text = text.replace("/etc/nginx/mime.types", str(conf_dir / "mime.types"))
    text = text.replace("listen        80 default_server;", "listen 127.0.0.1:18080;")
    (conf_dir / "nginx.conf").write_text(text, encoding="utf-8")
    result = subprocess.run(
        [
            _nginx.NGINX,
            "-t",
            "-p",
            str(conf_dir),
            "-c",
            str(conf_dir / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


# ------------------------------------------------------------------ slow clients (issue 17.1)

# Directives that protect gunicorn from slow or oversized clients; production must carry the
# rehearsal's values, since the rehearsal is where the drills measure them.
PROTECTIONS = (
    "client_header_timeout", "client_body_timeout", "send_timeout", "reset_timedout_connection",
    "proxy_request_buffering", "client_max_body_size", "client_body_buffer_size",
    "large_client_header_buffers", "limit_conn", "limit_conn_status",
)  # fmt: skip


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The rehearsal's nginx.conf as `make staging` renders it with its default settings."""
    from tools.staging import stack  # the rehearsal's own renderer

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("STAGING_")}
    try:
        cfg = stack.Config(run_dir=tmp_path_factory.mktemp("staging"), app_ports=[8101])
    finally:
        os.environ.update(saved)
    return _strip_comments(stack.render_nginx(cfg).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", PROTECTIONS)
def test_production_has_the_rehearsals_protection(name: str, staging: str) -> None:
    assert directive(name) == directive(name, staging)


def test_the_connection_limit_answers_problem_json_in_both(staging: str) -> None:
    for text in (_config_text(), staging):
        assert directive("error_page", text) == ["429", "@too_many_in_progress"]
        assert "default_type application/problem+json;" in text


def test_refused_requests_are_answered_not_reset(staging: str) -> None:
    assert directive("lingering_close") == directive("lingering_close", staging) == ["always"]


def test_slow_clients_are_cut_off_quickly() -> None:
    for name in ("client_header_timeout", "client_body_timeout"):
        (value,) = directive(name)
        assert seconds(value) <= 10, name
    assert directive("proxy_request_buffering") == ["on"]


def _limit_zone(text: str) -> tuple[str, str]:
    key, zone, *_ = directive("limit_conn_zone", text)
    return key, zone


def test_connection_limit_is_per_client_address(staging: str) -> None:
    """The rehearsal's proxy is the edge; production's sits behind the ALB, whose node address
    is $remote_addr: there the client is the last X-Forwarded-For entry."""
    staging_key, staging_zone = _limit_zone(staging)
    production_key, production_zone = _limit_zone(_config_text())
    assert staging_key == "$binary_remote_addr"
    assert staging_zone == production_zone == "zone=per_client:10m"
    mapped = re.search(r"map\s+\$http_x_forwarded_for\s+" + re.escape(production_key)
                       + r"\s*\{([^}]*)\}", _config_text())  # fmt: skip
    assert mapped, f"{production_key} is not mapped from X-Forwarded-For"
    assert re.search(r"default\s+\$remote_addr;", mapped.group(1))


def _forwarded_client_pattern() -> re.Pattern[str]:
    mapped = re.search(r'map\s+\$http_x_forwarded_for\s+\$\w+\s*\{\s*"~([^"]+)"\s+\$1;',
                       _config_text())  # fmt: skip
    assert mapped
    return re.compile(mapped.group(1))


@pytest.mark.parametrize(("header", "client"), [
    ("203.0.113.7", "203.0.113.7"),
    ("198.51.100.1, 203.0.113.7", "203.0.113.7"),  # a client's own (spoofable) entry is ignored
    ("a, b,203.0.113.7 ", "203.0.113.7"),
    ("2001:db8::1", "2001:db8::1"),
])
def test_the_client_key_is_the_entry_the_load_balancer_appended(header: str, client: str) -> None:
    match = _forwarded_client_pattern().search(header)
    assert match and match.group(1) == client


# ------------------------------------------------------------------ nginx for real

needs_nginx = pytest.mark.skipif(_nginx.NGINX is None, reason="nginx is not installed")
LEGACY_LINE = 16_000  # a long legacy GET that the ALB and both proxies must pass
HUGE_LINE = 5 * 1024 * 1024  # gunicorn (limit_request_line=0) spent 3.2 s of CPU on this


_path = drill_long_lines.path_of_line


def _line_caps(target) -> None:
    status, _ = _nginx.request_line_status(target, _path(LEGACY_LINE))
    assert status == 200, "a 16 000-byte legacy request line must reach the app"
    status, _ = _nginx.request_line_status(target, _path(16 * 1024 + 1))
    assert status == 414
    status, took = _nginx.request_line_status(target, _path(HUGE_LINE))
    assert status == 414, "a 5 MB request line is refused by the proxy, never parsed by gunicorn"
    assert took < 5, f"the refusal came after {took:.1f} s"


@needs_nginx
def test_production_proxy_caps_request_lines_at_16_kb(tmp_path: Path) -> None:
    with _nginx.production(tmp_path) as target:
        _line_caps(target)


@needs_nginx
def test_rehearsal_proxy_caps_request_lines_at_16_kb(tmp_path: Path) -> None:
    with _nginx.rehearsal(tmp_path) as target:
        _line_caps(target)


def _open_slow_body(target, forwarded: str | None) -> socket.socket:
    """A POST whose header is complete and whose body is still coming (held by nginx)."""
    sock = _nginx.connect(target)
    xff = f"X-Forwarded-For: {forwarded}\r\n" if forwarded else ""
    sock.sendall(f"POST /v1/ HTTP/1.1\r\nHost: paintshop.test\r\n{xff}"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[1".encode())
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """(status, head, body) of one answer, reading its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return drill_long_lines.status_of(sock, data), data, b""
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1]), head, body[:int(length.group(1))] if length else body


def _complete_post(target, forwarded: str | None) -> int:
    sock = _open_slow_body(target, forwarded)
    try:
        sock.sendall(b"0" * 998 + b"]")
        status, head, body = _read_answer(sock)
        if status == 429:  # answered like the app, not with nginx's HTML page
            assert b"content-type: application/problem+json" in head.lower()
            assert b"retry-after: 1" in head.lower()
            problem = json.loads(body)
            assert problem["status"] == 429
            assert problem["type"] == PROBLEM_TYPE_PREFIX + STATUS_SLUGS[429]
        return status
    finally:
        sock.close()


def _held_requests_limit(target, forwarded: str | None, other: str | None) -> None:
    held = [_open_slow_body(target, forwarded) for _ in range(100)]
    try:
        time.sleep(0.3)  # every header read, every request counted
        assert _complete_post(target, forwarded) == 429, "the 101st request from one address"
        if other is not None:
            assert _complete_post(target, other) == 200, "another address is not limited"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert _complete_post(target, forwarded) == 200, "the address is served again"


@needs_nginx
def test_production_proxy_limits_requests_per_forwarded_client(tmp_path: Path) -> None:
    with _nginx.production(tmp_path) as target:
        _held_requests_limit(target, "198.51.100.1, 203.0.113.7", "203.0.113.7, 192.0.2.9")


@needs_nginx
def test_rehearsal_proxy_limits_requests_per_address(tmp_path: Path) -> None:
    with _nginx.rehearsal(tmp_path) as target:
        _held_requests_limit(target, None, None)
