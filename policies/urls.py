from django.urls import path

from policies import pages, views

api_urlpatterns = [
    path("api/v1/director/policies", views.PolicyListView.as_view(), name="director-policies"),
    path("api/v1/director/policies/<int:policy_id>", views.PolicyDetailView.as_view(), name="director-policy"),
    path("api/v1/director/policies/<int:policy_id>/versions", views.PolicyVersionsView.as_view(),
         name="director-policy-versions"),
    path("api/v1/director/policies/<int:policy_id>/tags", views.PolicyTagsView.as_view(),
         name="director-policy-tags"),
    path("api/v1/director/policies/<int:policy_id>/push", views.PolicyPushView.as_view(),
         name="director-policy-push"),
    path("api/v1/director/config-push-jobs/<int:job_id>", views.PushJobView.as_view(), name="director-push-job"),
    path("api/v1/director/edge-controllers/<str:product_id>/config", views.EdgeControllerConfigView.as_view(),
         name="director-ec-config"),
    path("api/v1/director/edge-controllers/<str:product_id>/manual-config", views.ManualConfigView.as_view(),
         name="director-ec-manual-config"),
]

page_urlpatterns = [
    path("policies/", pages.policy_list, name="policies"),
    path("policies/<int:policy_id>/", pages.policy_detail, name="policy-detail"),
    path("policies/<int:policy_id>/versions", pages.policy_new_version, name="policy-new-version"),
    path("policies/<int:policy_id>/tags", pages.policy_tags, name="policy-tags"),
    path("policies/<int:policy_id>/push", pages.policy_push, name="policy-push"),
    path("policies/<int:policy_id>/delete", pages.policy_delete, name="policy-delete"),
    path("controllers/<int:controller_id>/manual-config", pages.manual_config, name="controller-manual-config"),
]
