"""gunicorn's logger with the access log made opt-in (gunicorn.conf.py's `logger_class`).

gunicorn writes access lines whenever a `logconfig_dict` is set, even with `accesslog` unset;
ours is set (for the JSON shape), so this class restores the switch: access lines only when
`accesslog` is given (GUNICORN_ACCESS_LOG). The app's own request line covers every request that
reaches Flask.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger


class AccessOptInLogger(Logger):
    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)
