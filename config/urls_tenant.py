"""URLs of a Director tenant's host name (the tenant's schema)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path

from est.urls import est_urlpatterns
from onboarding.pages import controllers, dashboard, tags
from onboarding.urls import api_urlpatterns
from policies.urls import api_urlpatterns as policy_api_urlpatterns
from policies.urls import page_urlpatterns as policy_page_urlpatterns

urlpatterns = []
if settings.DIRECTOR_ROLE:
    urlpatterns += [
        *api_urlpatterns,
        *policy_api_urlpatterns,
        *est_urlpatterns,
        path("", dashboard.dashboard, name="dashboard"),
        path("requests/decide", dashboard.decide_many, name="decide-many"),
        path("requests/<uuid:request_id>/approve", dashboard.decide, {"decision": "approve"}, name="approve"),
        path("requests/<uuid:request_id>/reject", dashboard.decide, {"decision": "reject"}, name="reject"),
        path("controllers/status", dashboard.controller_status, name="controller-status"),
        path("controllers/<int:controller_id>/", controllers.controller_detail, name="controller-detail"),
        path("controllers/<int:controller_id>/revoke", controllers.revoke, name="controller-revoke"),
        path("controllers/<int:controller_id>/decommission", controllers.decommission,
             name="controller-decommission"),
        *policy_page_urlpatterns,
        path("tags/", tags.tag_list, name="tags"),
        path("tags/create", tags.tag_create, name="tag-create"),
        path("tags/<int:tag_id>/rename", tags.tag_rename, name="tag-rename"),
        path("tags/<int:tag_id>/delete", tags.tag_delete, name="tag-delete"),
        path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
        path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/accounts/login/"), name="logout"),
    ]

handler404 = "config.api.not_found_view"
handler500 = "config.api.server_error_view"
