"""A push job cut short by an unreachable database or broker is retried, not dropped."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

from policies.tasks import push_policy_task


def test_push_task_retries_on_database_errors():
    assert OperationalError in push_policy_task.autoretry_for
    assert InterfaceError in push_policy_task.autoretry_for


def test_push_task_retries_on_broker_errors():
    assert OSError in push_policy_task.autoretry_for
