"""The operations endpoints. :class:`ops.middleware.OpsMiddleware` serves them on the public host names only."""

from django.urls import path

from ops import views

urlpatterns = [
    path("healthz", views.liveness, name="liveness"),
    path("readyz", views.readiness, name="readiness"),
    path("metrics", views.metrics, name="metrics"),
]
