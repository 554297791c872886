"""The nginx override in .platform/nginx/: limits match the app; timeouts match gunicorn, ALB.

If an nginx binary is on PATH the configuration is also checked with `nginx -t` (paths that
only exist on the Elastic Beanstalk instance are redirected into a temporary directory).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ._cfn import ROOT, ebextension_files, load, option_settings

NGINX_DIR = ROOT / ".platform" / "nginx"
NGINX_CONF = NGINX_DIR / "nginx.conf"
GUNICORN_TIMEOUT_S = 60  # gunicorn.conf.py default `timeout`
GUNICORN_KEEPALIVE_S = 75  # gunicorn.conf.py default `keepalive`
MAX_CONTENT_LENGTH = 16 * 1024 * 1024  # app default MAX_CONTENT_LENGTH
ALB_MAX_REQUEST_LINE = 16 * 1024  # ALB limit for the request line and for one header

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def _config_text() -> str:
    files = [NGINX_CONF, *sorted((NGINX_DIR / "conf.d").glob("**/*.conf"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in files if p.exists())
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def directive(name: str) -> list[str]:
    values = re.findall(rf"(?m)^\s*{name}\s+([^;]+);", _config_text())
    assert values, f"{name} is not set in .platform/nginx"
    assert len(values) == 1, f"{name} is set {len(values)} times"
    return values[0].split()


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * UNITS[unit.lower()]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smh]?)", value).groups()
    return int(number) * TIME_UNITS[unit]


def alb_idle_timeout() -> int:
    for path in ebextension_files():
        doc, _ = load(path)
        for ns, name, value in option_settings(doc or {}):
            if ns == "aws:elbv2:loadbalancer" and name == "IdleTimeout":
                return int(value)
    return 60  # ALB default


@pytest.mark.parametrize("path", [NGINX_CONF, ROOT / "staging" / "nginx.conf.template"])
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


@pytest.mark.skipif(shutil.which("nginx") is None, reason="no nginx binary on PATH")
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
            shutil.which("nginx"),
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
