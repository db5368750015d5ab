"""URLs of the Provision Server host names (the public schema)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from msp import pages as msp_pages
from provisioning.views import ZtpLookupView, ZtpReportView

admin.site.site_header = "ZTSP vendor admin"
admin.site.site_title = "ZTSP vendor admin"
admin.site.index_title = "Provision Server"

# The MSP self-service portal; every page but sign-up and sign-in needs an MSP user.
portal_urlpatterns = [
    path("", msp_pages.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(template_name="msp/login.html", next_page="/portal/"),
         name="login"),
    path("signup/", msp_pages.signup_request, name="signup"),
    path("claim/", msp_pages.claim, name="claim"),
    path("tenants/", msp_pages.tenants, name="tenants"),
    path("tenants/hosted/", msp_pages.create_hosted_tenant, name="create-hosted-tenant"),
    path("tenants/jobs/<uuid:job_id>/", msp_pages.tenant_job, name="tenant-job"),
    path("tenants/jobs/<uuid:job_id>/status/", msp_pages.tenant_job_status, name="tenant-job-status"),
    path("tenants/jobs/<uuid:job_id>/access-key/", msp_pages.tenant_job_access_key, name="tenant-job-access-key"),
    path("tenants/external/", msp_pages.register_external_tenant, name="register-external-tenant"),
    path("tenants/<int:pk>/rotate/", msp_pages.rotate_tenant_key, name="rotate-tenant-key"),
    path("products/", msp_pages.product_list, name="products"),
    path("products/selection/", msp_pages.product_selection, name="product-selection"),
    path("products/map-csv/", msp_pages.map_csv, name="map-csv"),
    path("products/<str:product_id>/", msp_pages.product_detail, name="product"),
    path("tokens/", msp_pages.api_tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", msp_pages.revoke_api_token, name="revoke-token"),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(urlconf="config.urls_schema"), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
if settings.PROVISION_ROLE:
    urlpatterns += [
        path("api/v1/ztp/lookup", ZtpLookupView.as_view(), name="ztp-lookup"),
        path("api/v1/ztp/report", ZtpReportView.as_view(), name="ztp-report"),
        path("", include("msp.urls")),
        path("portal/", include((portal_urlpatterns, "msp-portal"))),
        # Django's password reset views reverse these names without a namespace.
        path("portal/logout/", auth_views.LogoutView.as_view(next_page="/portal/login/"), name="logout"),
        path("portal/password-reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
        path("portal/password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
        path("portal/password-reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(),
             name="password_reset_confirm"),
        path("portal/password-reset/done/", auth_views.PasswordResetCompleteView.as_view(),
             name="password_reset_complete"),
    ]

handler404 = "config.api.not_found_view"
handler500 = "config.api.server_error_view"
