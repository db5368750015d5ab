"""Every API route of both host kinds, for the one OpenAPI schema."""

from django.urls import include, path

from est.urls import est_urlpatterns
from onboarding.urls import api_urlpatterns
from policies.urls import api_urlpatterns as policy_api_urlpatterns
from provisioning.views import ZtpLookupView, ZtpReportView

urlpatterns = [
    path("api/v1/ztp/lookup", ZtpLookupView.as_view()),
    path("api/v1/ztp/report", ZtpReportView.as_view()),
    path("", include("msp.urls")),
    *api_urlpatterns,
    *policy_api_urlpatterns,
    *est_urlpatterns,
]
