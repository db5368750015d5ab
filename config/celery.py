"""The Celery application: tenant-aware, so each task runs in the schema it was queued from."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("ztsp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
