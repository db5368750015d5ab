"""No Celery task message published during the whole flow carries a secret in its arguments."""

from __future__ import annotations

import json

import pytest

from tests.secrets.scanning import find_secrets_in_file

pytestmark = pytest.mark.e2e


def _messages(secret_flow) -> list[dict]:
    return [json.loads(line) for line in secret_flow.stack.task_log.read_text().splitlines() if line.strip()]


def test_flow_published_the_expected_tasks(secret_flow):
    names = {message["task"] for message in _messages(secret_flow)}

    assert "onboarding.tasks.issue_certificates_task" in names
    assert "msp.tasks.run_tenant_creation_job_task" in names


def test_task_messages_hold_no_secret(secret_flow):
    findings = find_secrets_in_file(secret_flow.stack.task_log, secret_flow.registry.needles)

    assert not findings, "secrets found in task messages:\n" + "\n".join(findings)


def test_task_arguments_are_ids_only(secret_flow):
    """Tasks take primary keys and names, never objects or free text: every argument is a short scalar."""
    for message in _messages(secret_flow):
        args, kwargs, _embed = message["body"]
        values = list(args) + list(kwargs.values())
        flat = [item for value in values for item in (value if isinstance(value, list) else [value])]
        for value in flat:
            assert isinstance(value, str | int), f"{message['task']} has an argument of type {type(value).__name__}"
            assert len(str(value)) <= 64, f"{message['task']} has an argument of {len(str(value))} characters"
