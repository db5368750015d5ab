from django.urls import path

from onboarding import views

api_urlpatterns = [
    path("api/v1/onboard", views.OnboardView.as_view(), name="onboard"),
    path("api/v1/onboard/<uuid:request_id>", views.OnboardStatusView.as_view(), name="onboard-status"),
    path("api/v1/pki/ca", views.CaChainView.as_view(), name="pki-ca"),
    path("api/v1/pki/crl", views.CrlView.as_view(), name="pki-crl"),
    path("api/v1/pki/crl/<str:key_id>", views.CrlByCaView.as_view(), name="pki-crl-by-ca"),
    path("api/v1/director/onboard-requests", views.OnboardRequestListView.as_view(),
         name="director-onboard-requests"),
    path("api/v1/director/onboard-requests/<uuid:request_id>/approve",
         views.DecisionView.as_view(decision="approve"), name="director-approve"),
    path("api/v1/director/onboard-requests/<uuid:request_id>/reject",
         views.DecisionView.as_view(decision="reject"), name="director-reject"),
    path("api/v1/director/edge-controllers", views.EdgeControllerListView.as_view(),
         name="director-edge-controllers"),
    path("api/v1/director/edge-controllers/<str:product_id>/certificates", views.CertificateListView.as_view(),
         name="director-certificates"),
    path("api/v1/director/edge-controllers/<str:product_id>/revoke-certificate",
         views.RevokeCertificateView.as_view(), name="director-revoke-certificate"),
    path("api/v1/director/edge-controllers/<str:product_id>/decommission", views.DecommissionView.as_view(),
         name="director-decommission"),
]
