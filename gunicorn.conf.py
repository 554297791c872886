"""gunicorn settings for every environment (Elastic Beanstalk runs the Procfile's web command).

Timeouts nest inside nginx's and the load balancer's (.platform/nginx, infra/environment.yaml):
gunicorn kills a worker silent for 60 s, nginx waits 65 s for a response, the load balancer's idle
timeout is 70 s, and keep-alive (75 s) outlasts the proxy's so the proxy, not gunicorn, closes
idle connections.

gunicorn must only ever be reached through the proxy or on loopback: it binds 127.0.0.1 unless
BIND_HOST says otherwise. Directly exposed, a few dozen connections that send their header or
body slowly hold every worker thread, and an unlimited request line costs quadratic CPU; nginx
in front cuts slow clients off, buffers bodies and caps lines at 16 KB (docs/DEPLOY.md).
"""

import glob
import os
import tempfile

# prometheus-client's multiprocess mode: each worker writes its samples under this directory and
# /metrics sums them. It must be in the environment before any worker imports prometheus_client;
# Elastic Beanstalk sets it (shared with the `metrics:` process), other runs get a private one.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="paintshop-prometheus-")

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{int(os.environ.get('PORT', '8000'))}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, (os.cpu_count() or 1) + 1))))
# Server-sent event streams hold a thread each: POLL_STREAM_MAX_PER_PROCESS (4) stays below this.
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10

# Legacy GETs carry the whole problem in the URL, up to the load balancer's 16 KB request line;
# gunicorn's default limit of 4094 bytes would reject ordinary legacy calls, and any finite value
# is capped at 8190, so the line is unlimited here and nginx (large_client_header_buffers) and
# the load balancer bound it in front.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "0"))
limit_request_field_size = 16384

# gunicorn's control socket (gunicornc) defaults to ONE path per user and host
# ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): every instance started on a host
# replaces it and every stop removes it, another instance's included. Nothing here uses it, so
# it is off; GUNICORN_CONTROL_SOCKET=<path> turns it on at a path of that instance's own.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# The app writes one JSON line per request (logger app.request: route, status, duration, user,
# request id), so gunicorn's own access line would only repeat it, at about a quarter of a small
# request's CPU, with the whole URL (legacy inputs, ?api_key=) in it. GUNICORN_ACCESS_LOG=-
# turns it back on, e.g. to see requests that never reach the app.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
logger_class = "app.ops.gunicorn_logging.AccessOptInLogger"  # honours accesslog (see there)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
preload_app = False

# gunicorn's access and error logs in the app's JSON shape (app/ops/logging.py); the root logger
# gets the same handler, which create_app then keeps instead of adding a second one.
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)s %({x-request-id}o)s'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "json": {"()": "app.ops.logging.make_handler"},
        "json_access": {"()": "app.ops.logging.make_access_handler"},
    },
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["json"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["json_access"], "propagate": False},
        # Importing the app imports alembic (readiness compares the migration head), which logs
        # one INFO line per autogenerate plugin in every worker before create_app runs.
        "alembic.runtime.plugins": {"level": "WARNING"},
    },
}


def on_starting(server):
    """In the master, before any worker exists: empty the Prometheus multiprocess directory.

    Only here: a worker wiping it would delete live counter files (PITFALLS §1).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (db_pool_connections_in_use) from the aggregate."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    """Never share database connections with the master or other workers."""
    from app.db import db

    app = getattr(worker, "wsgi", None)
    if app is not None:
        with app.app_context():
            db.engine.dispose(close=False)


def worker_int(worker):
    worker.log.info("worker %s interrupted", worker.pid)
