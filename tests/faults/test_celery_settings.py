"""The Celery settings that let a killed worker's message be delivered again, exactly when it should be."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from config.celery import app

PROJECT_DIR = Path(__file__).resolve().parents[2]
COUNTDOWN_RE = re.compile(r"\b(?:countdown|retry_backoff_max|default_retry_delay)\s*=\s*(\d+(?:\.\d+)?)")


def _visibility_timeout() -> float:
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


def _project_tasks():
    app.loader.import_default_modules()
    return [task for name, task in app.tasks.items() if not name.startswith("celery.")]


def _countdowns_in_source() -> list[float]:
    values = []
    for path in PROJECT_DIR.rglob("*.py"):
        relative = path.relative_to(PROJECT_DIR).parts
        if relative[0] in {".venv", "tests", "bench"} or "migrations" in relative:
            continue
        values += [float(value) for value in COUNTDOWN_RE.findall(path.read_text())]
    return values


def test_visibility_timeout_exceeds_longest_countdown():
    tasks = _project_tasks()
    retry_delays = [task.retry_backoff_max if task.retry_backoff else task.default_retry_delay
                    for task in tasks if getattr(task, "autoretry_for", ())]

    longest = max(retry_delays + _countdowns_in_source())

    assert retry_delays, "no task with automatic retry found; is the task list empty?"
    assert _visibility_timeout() > longest


def test_visibility_timeout_exceeds_longest_task_run():
    limits = [task.time_limit or settings.CELERY_TASK_TIME_LIMIT for task in _project_tasks()]

    assert _visibility_timeout() > max(limits)


def test_soft_time_limits_below_hard_limits():
    for task in _project_tasks():
        soft = task.soft_time_limit or settings.CELERY_TASK_SOFT_TIME_LIMIT
        hard = task.time_limit or settings.CELERY_TASK_TIME_LIMIT

        assert soft < hard, task.name


def test_messages_are_acknowledged_after_the_task():
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
