"""Start and stop the local production rehearsal (`make staging`, `make staging-stop`).

    python -m tools.staging.stack start     # database, two app instances, bare baseline, nginx
    python -m tools.staging.stack stop      # stops exactly the processes recorded in the pid files
    python -m tools.staging.stack status

Everything listens on 127.0.0.1 only. The runtime directory (default tools/staging/run/,
git-ignored) holds the generated secrets, the TLS certificate, the rendered nginx.conf, one pid file
per process, logs and nginx's temp paths. Settings come from environment variables (STAGING_*, see
`Config`), so CI can run a second stack on other ports and another database.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "tools" / "staging"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def _ints(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.strip()]


@dataclass
class Config:
    run_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("STAGING_RUN_DIR", str(STAGING / "run"))).resolve())
    database: str = field(default_factory=lambda: os.environ.get("STAGING_DB",
                                                                 "paintshop_staging"))
    redis_db: int = field(default_factory=lambda: int(os.environ.get("STAGING_REDIS_DB", "14")))
    app_ports: list[int] = field(default_factory=lambda: _ints(
        os.environ.get("STAGING_APP_PORTS", "8101,8102")))
    bare_ports: list[int] = field(default_factory=lambda: _ints(
        os.environ.get("STAGING_BARE_PORTS", "8111,8112")))
    https_port: int = field(default_factory=lambda: int(
        os.environ.get("STAGING_HTTPS_PORT", "8443")))
    http_port: int = field(default_factory=lambda: int(
        os.environ.get("STAGING_HTTP_PORT", "8080")))
    bare_https_port: int = field(default_factory=lambda: int(
        os.environ.get("STAGING_BARE_HTTPS_PORT", "8444")))
    web_concurrency: str = field(default_factory=lambda: os.environ.get(
        "STAGING_WEB_CONCURRENCY", "2"))
    threads: str = field(default_factory=lambda: os.environ.get("STAGING_THREADS", "8"))
    max_fails: int = field(default_factory=lambda: int(os.environ.get("STAGING_MAX_FAILS", "3")))
    fail_timeout: int = field(default_factory=lambda: int(
        os.environ.get("STAGING_FAIL_TIMEOUT", "10")))
    # Which failures send an idempotent request to the other instance AND count against an
    # instance's max_fails. http_503 is left out by default: the app answers 503 when a shared
    # dependency (the database) is down or a fault is injected, which the other instance cannot
    # fix, and counting those 503s ejects both instances ("no live upstreams"); see
    # docs/PERFORMANCE.md, fault injection drill.
    next_upstream: str = field(default_factory=lambda: os.environ.get(
        "STAGING_NEXT_UPSTREAM", "error timeout http_502"))
    # Requests in progress per client address (nginx limit_conn), production's 100 by default.
    # The load generator is one address: a run with more concurrent users must raise it.
    conn_per_address: int = field(default_factory=lambda: int(
        os.environ.get("STAGING_CONN_PER_ADDRESS", "100")))

    @property
    def database_url(self) -> str:
        return f"{PG_SERVER}/{self.database}"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def bare_url(self) -> str:
        return f"https://127.0.0.1:{self.bare_https_port}"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / "pids" / f"{name}.pid"


# --- process bookkeeping -------------------------------------------------------------------------

def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_ours(pid: int, marker: str) -> bool:
    """The pid is alive, not a zombie, and still runs what we started (pids get reused)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and marker in _cmdline(pid)


def read_pid(cfg: Config, name: str) -> int | None:
    try:
        return int(cfg.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def _marker(name: str) -> str:
    if name.startswith("loader-"):
        return "app.history.loader"
    return "nginx" if name == "nginx" else "gunicorn"


def running(cfg: Config) -> dict[str, int]:
    """name -> pid of every recorded process that is still ours."""
    found = {}
    pids = cfg.run_dir / "pids"
    for path in sorted(pids.glob("*.pid")) if pids.is_dir() else []:
        pid = read_pid(cfg, path.stem)
        if pid and _is_ours(pid, _marker(path.stem)):
            found[path.stem] = pid
    return found


def _wait_gone(pid: int, marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pid in _CHILDREN and _CHILDREN[pid].poll() is not None:
            _CHILDREN.pop(pid)
        if not _is_ours(pid, marker):
            return True
        time.sleep(0.1)
    return not _is_ours(pid, marker)


def stop_process(cfg: Config, name: str, graceful: float = 15.0) -> str:
    """Stop one recorded process (and its process group, i.e. gunicorn's workers)."""
    pid = read_pid(cfg, name)
    marker = _marker(name)
    if pid is None or not _is_ours(pid, marker):
        cfg.pid_file(name).unlink(missing_ok=True)
        return "not running"
    first = signal.SIGQUIT if name == "nginx" else signal.SIGTERM
    _signal_group(pid, first)
    how = "stopped"
    if not _wait_gone(pid, marker, graceful):
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(pid, marker, 5)
        how = "killed after timeout"
    cfg.pid_file(name).unlink(missing_ok=True)
    return how


def kill_instance(cfg: Config, name: str) -> int:
    """kill -9 an app instance: its master and every worker, as if the machine vanished."""
    pid = read_pid(cfg, name)
    if pid is None or not _is_ours(pid, "gunicorn"):
        raise RuntimeError(f"{name} is not running")
    _signal_group(pid, signal.SIGKILL)
    _reap(pid)
    _wait_gone(pid, "gunicorn", 5)
    return pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Each process was started as its own session leader, so its group id is its pid."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


# Children started by this process, kept so they are reaped (no zombies, no ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _CHILDREN[pid] = child


def _spawn(cfg: Config, name: str, argv: list[str], env: dict[str, str]) -> int:
    log = open(cfg.run_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    _CHILDREN[proc.pid] = proc
    cfg.pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


# --- pieces of the stack -------------------------------------------------------------------------

def procfile_web_command() -> list[str]:
    return procfile_command("web")


def procfile_command(process: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{process}:"):
            return shlex.split(line.split(":", 1)[1])
    raise RuntimeError(f"Procfile has no {process}: process")


def app_env(cfg: Config, port: int | None = None, **extra: str) -> dict[str, str]:
    """Production settings for an instance. Secrets are generated per `start`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULT_", "TEST_DATABASE"))}
    env.update(_read_env_file(cfg.run_dir / "secrets.env"))
    env.update({
        "PATH": f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "APP_ENV": "production",
        "DATABASE_URL": cfg.database_url,
        "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:6379/{cfg.redis_db}",
        "TRUSTED_PROXY_HOPS": "1",
        "PUBLIC_HOST": f"127.0.0.1:{cfg.https_port}",  # where the app redirects plain HTTP
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": cfg.web_concurrency,
        "GUNICORN_THREADS": cfg.threads,
        # Production's pools (infra/environment.yaml): with the app's defaults (5 + 5 overflow)
        # 8 busy threads opened and closed a connection every ~27 votes, which cost PostgreSQL
        # more CPU than the votes did.
        "DB_POOL_SIZE": os.environ.get("DB_POOL_SIZE", "2"),
        "DB_MAX_OVERFLOW": os.environ.get("DB_MAX_OVERFLOW", "0"),
        "CLOUDWATCH_ENABLED": "false",
        "ENVIRONMENT_NAME": "staging-local",
        # Production's log level: one JSON request line per request, in run/logs/app-<port>.log.
        "LOG_LEVEL": os.environ.get("STAGING_LOG_LEVEL", "INFO"),
        # One load generator on one address stands for many clients; see docs/PERFORMANCE.md.
        "RATELIMIT_DEFAULT": os.environ.get("STAGING_RATELIMIT_DEFAULT", "1000000/minute"),
        "RATELIMIT_LOGIN": os.environ.get("STAGING_RATELIMIT_LOGIN", "10000/minute"),
        "RATELIMIT_REGISTER": os.environ.get("STAGING_RATELIMIT_REGISTER", "10000/minute"),
        # Argon2 at the production cost would make the load generator's logins the bottleneck
        # only at start; keep production values unless told otherwise.
    })
    env.pop("FLASK_APP", None)
    if port is not None:
        prom = cfg.run_dir / f"prometheus-{port}"
        prom.mkdir(exist_ok=True)
        for stale in prom.glob("*.db"):
            stale.unlink()
        env["PORT"] = str(port)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
        # Each instance has its own journal and loader, as each EC2 instance has.
        env["HISTORY_JOURNAL_DIR"] = str(cfg.run_dir / f"journal-{port}")
    env.update(extra)
    return env


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def write_secrets(cfg: Config) -> None:
    path = cfg.run_dir / "secrets.env"
    secret, jwt_secret, metrics = (secrets.token_urlsafe(48) for _ in range(3))
    path.write_text(f"SECRET_KEY={secret}\nJWT_SECRET_KEY={jwt_secret}\nMETRICS_TOKEN={metrics}\n")
    path.chmod(0o600)


def reset_database(cfg: Config) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{PG_SERVER}/postgres", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{cfg.database}"')
    conn.close()
    env = app_env(cfg, FLASK_APP="app.wsgi")
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "db", "upgrade", "heads"],  # noqa: S603
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{done.stdout}{done.stderr}")


def reset_redis(cfg: Config) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=cfg.redis_db, socket_timeout=3).flushdb()


def make_certificate(cfg: Config) -> None:
    tls = cfg.run_dir / "tls"
    tls.mkdir(exist_ok=True)
    subprocess.run(  # noqa: S603
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",  # noqa: S607
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )
    (tls / "key.pem").chmod(0o600)


def start_app(cfg: Config, port: int, **extra: str) -> int:
    name = f"app-{port}"
    _spawn(cfg, name, procfile_web_command(), app_env(cfg, port, **extra))
    start_loader(cfg, port)
    wait_http(f"http://127.0.0.1:{port}/health/ready", 60, name)
    return read_pid(cfg, name) or 0


def start_loader(cfg: Config, port: int, **extra: str) -> int:
    """The instance's history loader (the Procfile's loader: line), unless it runs already."""
    name = f"loader-{port}"
    pid = read_pid(cfg, name)
    if pid is not None and _is_ours(pid, _marker(name)):
        return pid
    return _spawn(cfg, name, procfile_command("loader"), app_env(cfg, port, **extra))


def start_bare(cfg: Config, port: int) -> int:
    name = f"bare-{port}"
    argv = [part if part != "app.wsgi:application" else "tools.staging.hello:application"
            for part in procfile_web_command()]
    _spawn(cfg, name, argv, app_env(cfg, port))
    wait_http(f"http://127.0.0.1:{port}/", 60, name)
    return read_pid(cfg, name) or 0


def render_nginx(cfg: Config) -> Path:
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails={cfg.max_fails} fail_timeout={cfg.fail_timeout}s;"
        for p in cfg.app_ports)
    bare_upstream = bare_server = ""
    if cfg.bare_ports:
        bare_upstream = "\n    upstream bare {\n" + "\n".join(
            f"        server 127.0.0.1:{p} max_fails={cfg.max_fails} "
            f"fail_timeout={cfg.fail_timeout}s;" for p in cfg.bare_ports
        ) + "\n        keepalive 32;\n    }\n"
        bare_server = (
            "\n    # The bare baseline, behind the same TLS and proxy settings.\n"
            "    server {\n"
            f"        listen 127.0.0.1:{cfg.bare_https_port} ssl;\n"
            "        location / {\n            proxy_pass http://bare;\n        }\n    }\n"
        )
    text = (STAGING / "nginx.conf.template").read_text()
    for key, value in {
        "RUN": str(cfg.run_dir), "USER": _nginx_user(),
        "APP_SERVERS": servers, "BARE_UPSTREAM": bare_upstream, "BARE_SERVER": bare_server,
        "HTTP_PORT": str(cfg.http_port), "HTTPS_PORT": str(cfg.https_port),
        "NEXT_UPSTREAM": cfg.next_upstream, "CONN_PER_ADDRESS": str(cfg.conn_per_address),
    }.items():
        text = text.replace("{{" + key + "}}", value)
    if os.geteuid() != 0:
        text = text.replace("user ;\n", "")
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (cfg.run_dir / "nginx" / sub).mkdir(parents=True, exist_ok=True)
    path = cfg.run_dir / "nginx.conf"
    path.write_text(text)
    return path


def _nginx_user() -> str:
    """Workers drop to an unprivileged user when the master runs as root."""
    import grp
    import pwd

    if os.geteuid() != 0:
        return ""
    for user, group in (("www-data", "www-data"), ("nobody", "nogroup"), ("nobody", "nobody")):
        try:
            pwd.getpwnam(user)
            grp.getgrnam(group)
        except KeyError:
            continue
        return f"{user} {group}"
    return "root"


def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if Path(candidate).exists():
            return candidate
    raise RuntimeError("nginx is not installed (make staging installs it with apt-get)")


def start_nginx(cfg: Config) -> int:
    conf = render_nginx(cfg)
    argv = [nginx_binary(), "-p", f"{cfg.run_dir}/", "-c", str(conf)]
    test = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)  # noqa: S603
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    pid = _spawn(cfg, "nginx", argv, dict(os.environ))
    wait_http(f"{cfg.base_url}/health/ready", 30, "nginx")
    return pid


def reload_nginx(cfg: Config) -> None:
    """Render the config again from the environment and let the running master pick it up."""
    pid = read_pid(cfg, "nginx")
    if pid is None or not _is_ours(pid, "nginx"):
        raise RuntimeError("nginx is not running")
    if not load_state(cfg).get("bare_ports"):
        cfg.bare_ports = []
    conf = render_nginx(cfg)
    test = subprocess.run([nginx_binary(), "-p", f"{cfg.run_dir}/", "-c", str(conf), "-t"],  # noqa: S603
                          capture_output=True, text=True, timeout=30)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    os.kill(pid, signal.SIGHUP)
    time.sleep(1)
    wait_http(f"{cfg.base_url}/health/ready", 30, "nginx")


# --- HTTP helpers --------------------------------------------------------------------------------

INSECURE_TLS = ssl.create_default_context()
INSECURE_TLS.check_hostname = False
INSECURE_TLS.verify_mode = ssl.CERT_NONE  # the certificate is self-signed, made at start


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=INSECURE_TLS), _NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def wait_http(url: str, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, _, _ = http("GET", url, timeout=3)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as error:
            last = str(error)
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready at {url} after {seconds:.0f}s: {last}")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- commands ------------------------------------------------------------------------------------

def start(cfg: Config, bare: bool = True) -> dict:
    if running(cfg):
        print("staging: a previous stack is still running; stopping it first")
        stop(cfg)
    ports = [*cfg.app_ports, *(cfg.bare_ports if bare else []), cfg.https_port, cfg.http_port]
    if bare and cfg.bare_ports:
        ports.append(cfg.bare_https_port)
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise RuntimeError(f"ports already in use on 127.0.0.1: {busy}")
    if not bare:
        cfg.bare_ports = []
    for sub in ("pids", "logs"):
        (cfg.run_dir / sub).mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    write_secrets(cfg)
    reset_database(cfg)
    for journal in cfg.run_dir.glob("journal-*"):  # rows of the database just dropped
        shutil.rmtree(journal)
    reset_redis(cfg)
    make_certificate(cfg)
    try:
        for port in cfg.app_ports:
            start_app(cfg, port)
        for port in cfg.bare_ports:
            start_bare(cfg, port)
        start_nginx(cfg)
    except Exception:
        stop(cfg)
        raise
    state = {
        "base_url": cfg.base_url, "http_url": f"http://127.0.0.1:{cfg.http_port}",
        "bare_url": cfg.bare_url if cfg.bare_ports else None,
        "database_url": cfg.database_url, "app_ports": cfg.app_ports,
        "bare_ports": cfg.bare_ports, "redis_db": cfg.redis_db,
        "started_seconds": round(time.monotonic() - began, 1),
    }
    (cfg.run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    return state


def stop(cfg: Config) -> list[str]:
    """Stop nginx first (no new traffic), then the instances; only what the pid files name."""
    lines = []
    pids = cfg.run_dir / "pids"
    names = sorted(p.stem for p in pids.glob("*.pid")) if pids.is_dir() else []
    for name in sorted(names, key=lambda n: n != "nginx"):
        lines.append(f"{name}: {stop_process(cfg, name)}")
    (cfg.run_dir / "state.json").unlink(missing_ok=True)
    return lines


def load_state(cfg: Config) -> dict:
    path = cfg.run_dir / "state.json"
    if not path.exists():
        raise RuntimeError("staging is not running: run `make staging` first")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status", "reload-nginx"])
    parser.add_argument("--no-bare", action="store_true", help="skip the bare hello baseline")
    args = parser.parse_args(argv)
    cfg = Config()
    if args.command == "start":
        state = start(cfg, bare=not args.no_bare)
        print(f"staging up in {state['started_seconds']} s on 127.0.0.1 (runtime: {cfg.run_dir})")
        print(f"  load balancer  {state['base_url']}  (self-signed TLS; {state['http_url']}"
              " redirects)")
        print(f"  instances      {', '.join(f'127.0.0.1:{p}' for p in cfg.app_ports)}"
              "  (Procfile web command, APP_ENV=production)")
        if state["bare_url"]:
            print(f"  bare baseline  {state['bare_url']}")
        print(f"  database       {state['database_url']}  redis db {cfg.redis_db}")
        print("  stop with      make staging-stop")
    elif args.command == "stop":
        lines = stop(cfg)
        print("\n".join(lines) if lines else "staging: nothing recorded as running")
    elif args.command == "reload-nginx":
        reload_nginx(cfg)
        print(f"nginx reloaded; proxy_next_upstream {cfg.next_upstream}")
    else:
        alive = running(cfg)
        for name, pid in alive.items():
            print(f"{name}: pid {pid}")
        if not alive:
            print("staging: not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
