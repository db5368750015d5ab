"""The Celery application: tenant-aware, so each task runs in the schema it was queued from."""

import os

from celery.signals import task_prerun

from common.db import release_stale_connections

# Connected before tenant_schemas_celery connects its schema switch, which
# queries the Tenant table: signal receivers run in the order they were
# connected, so the switch gets a live connection after a PostgreSQL restart.
task_prerun.connect(release_stale_connections, dispatch_uid="ztsp_release_stale_connections")

from tenant_schemas_celery.app import CeleryApp  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("ztsp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
