"""Settings for the test run and for the server processes the tests start.

The first import picks a Celery queue, a cache prefix and free ports for this
run and exports them. The web server, worker and gateway started by the tests
inherit them, and a development stack sharing the same Redis never picks up
test tasks.
"""

import os
import socket
import uuid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_run_id = uuid.uuid4().hex[:8]
os.environ.setdefault("ZTSP_CELERY_QUEUE", f"ztsp-test-{_run_id}")
os.environ.setdefault("ZTSP_CACHE_PREFIX", f"ztsp-test-{_run_id}")
# Concurrent test runs on one server each get their own database.
os.environ.setdefault("ZTSP_TEST_DATABASE_NAME", f"test_ztsp_{_run_id}")
os.environ.setdefault("ZTSP_DIRECTOR_PORT", str(_free_port()))
os.environ.setdefault("ZTSP_TUNNEL_PORT", str(_free_port()))
os.environ.setdefault("ZTSP_HTTPS_PORT", str(_free_port()))
os.environ.setdefault("ZTSP_LOOKUP_RETRY_AFTER", "1")
os.environ.setdefault("ZTSP_HEARTBEAT_INTERVAL", "2")

from config.settings import *  # noqa: E402, F403

# Fast hashing for the passwords of test users; nothing else changes.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
