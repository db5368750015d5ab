"""Celery task latency from Celery's signals: queue wait and run time.

The publisher stamps each task message with its wall-clock publish time in
a header. The pool process that runs the task observes the wait when the
task starts, and the run time when it ends. When publisher and worker run on
different machines, the wait compares their clocks, so it is only as good as
their clock sync (NTP keeps it within milliseconds).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime

from celery import signals
from django.conf import settings

from ops.metrics import TASK_QUEUE_WAIT, TASK_RUN

logger = logging.getLogger(__name__)

PUBLISHED_AT_HEADER = "ztsp_published_at"

# Start time (monotonic seconds) of each running task, by task id, in this pool process.
_started: dict[str, float] = {}


def stamp_publish_time(sender=None, headers=None, **kwargs) -> None:
    if headers is not None:
        headers[PUBLISHED_AT_HEADER] = time.time()


def _wait_start(task) -> float | None:
    published_at = task.request.get(PUBLISHED_AT_HEADER)
    if published_at is None:
        return None
    eta = task.request.eta
    if eta:
        # A task with an ETA or countdown waits on purpose until then; only the delay after it counts.
        eta_seconds = (datetime.fromisoformat(eta) if isinstance(eta, str) else eta).timestamp()
        return max(float(published_at), eta_seconds)
    return float(published_at)


def observe_task_start(sender=None, task_id=None, task=None, **kwargs) -> None:
    _started[task_id] = time.monotonic()
    start = _wait_start(task)
    if start is not None:
        TASK_QUEUE_WAIT.labels(task.name).observe(max(0.0, time.time() - start))


def observe_task_end(sender=None, task_id=None, task=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_RUN.labels(task.name, state or "UNKNOWN").observe(time.monotonic() - started)


def start_worker_metrics_server(sender=None, **kwargs) -> None:
    """Serve the worker's metrics on ``ZTSP_WORKER_METRICS_PORT`` from its main process."""
    port = settings.ZTSP_WORKER_METRICS_PORT
    if not port:
        return
    from ops.metrics import process_registry
    from ops.metrics_server import start_metrics_server

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.warning("PROMETHEUS_MULTIPROC_DIR is unset, so with the prefork pool the task metrics of the "
                       "pool processes are not collected; set it to an empty folder private to this worker")
    start_metrics_server(settings.ZTSP_METRICS_BIND, port, [process_registry()])


def connect_signals() -> None:
    signals.before_task_publish.connect(stamp_publish_time, weak=False, dispatch_uid="ops-stamp-publish-time")
    signals.task_prerun.connect(observe_task_start, weak=False, dispatch_uid="ops-observe-task-start")
    signals.task_postrun.connect(observe_task_end, weak=False, dispatch_uid="ops-observe-task-end")
    signals.worker_ready.connect(start_worker_metrics_server, weak=False, dispatch_uid="ops-worker-metrics")
