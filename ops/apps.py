from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations: health, readiness and metrics"

    def ready(self):
        # The publish handler runs in every process that queues tasks (web,
        # worker, gateway), the run handlers in the worker's pool processes.
        from ops import celery_metrics

        celery_metrics.connect_signals()
