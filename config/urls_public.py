"""URLs of the Provision Server host names (the public schema)."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from provisioning.views import ZtpLookupView

admin.site.site_header = "ZTSP vendor admin"
admin.site.site_title = "ZTSP vendor admin"
admin.site.index_title = "Provision Server"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(urlconf="config.urls_schema"), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
if settings.PROVISION_ROLE:
    urlpatterns += [
        path("api/v1/ztp/lookup", ZtpLookupView.as_view(), name="ztp-lookup"),
        path("", include("msp.urls")),
    ]

handler404 = "config.api.not_found_view"
handler500 = "config.api.server_error_view"
