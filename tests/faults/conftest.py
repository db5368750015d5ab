"""Fixtures of the fault tests: a private deployment per test, which the test may break."""

from __future__ import annotations

import pytest

from tests.faults.stack import FaultStack

# Products seeded per test; each test uses as many as it needs.
PRODUCT_COUNT = 40


@pytest.fixture
def fault_stack(tmp_path):
    """A seeded private PostgreSQL and Redis with no process started yet; everything is stopped at the end."""
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = FaultStack.create(logs, PRODUCT_COUNT)
    yield stack
    stack.close()
