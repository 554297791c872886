"""The Prometheus registry to read: every gunicorn worker's, or this process's.

Read by `/metrics` (app/ops/metrics.py) and by the CloudWatch publisher (app/ops/cloudwatch.py).
It defines no metric, so the publisher, which imports it, writes no files of its own into the
workers' multiprocess directory.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess


def registry() -> CollectorRegistry:
    """All workers' metrics when PROMETHEUS_MULTIPROC_DIR is set, else this process's.

    A fresh registry per call: registering the multiprocess collector on the default registry
    would export every series twice.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        fresh = CollectorRegistry()
        multiprocess.MultiProcessCollector(fresh)
        return fresh
    return REGISTRY
