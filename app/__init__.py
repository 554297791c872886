"""The Paint Shop Platform: `create_app()` builds the Flask application (app/factory.py).

Importing this package loads nothing else, so a process can set its environment first: the
maintenance and loader processes drop PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from environment variables, with `overrides` (same names) on top."""
    from app.factory import create_app as build  # lazy: `import app` must stay light (above)

    return build(overrides)
