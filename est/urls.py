from django.urls import path

from est import views

# RFC 7030 section 3.2.2 fixes these paths under /.well-known/est/.
est_urlpatterns = [
    path(".well-known/est/cacerts", views.CaCertsView.as_view(), name="est-cacerts"),
    path(".well-known/est/simpleenroll", views.SimpleEnrollView.as_view(), name="est-simpleenroll"),
    path(".well-known/est/simplereenroll", views.SimpleReenrollView.as_view(), name="est-simplereenroll"),
]
