"""URLs of a Director tenant's host name (the tenant's schema)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path

from onboarding import pages
from onboarding.urls import api_urlpatterns

urlpatterns = []
if settings.DIRECTOR_ROLE:
    urlpatterns += [
        *api_urlpatterns,
        path("", pages.dashboard, name="dashboard"),
        path("requests/<uuid:request_id>/approve", pages.decide, {"decision": "approve"}, name="approve"),
        path("requests/<uuid:request_id>/reject", pages.decide, {"decision": "reject"}, name="reject"),
        path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
        path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/accounts/login/"), name="logout"),
    ]

handler404 = "config.api.not_found_view"
handler500 = "config.api.server_error_view"
