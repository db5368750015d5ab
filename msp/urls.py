from django.urls import path

from msp import views

urlpatterns = [
    path("api/v1/msp/products", views.ProductListView.as_view(), name="msp-products"),
    path("api/v1/msp/products/claim", views.ClaimProductsView.as_view(), name="msp-claim"),
    path("api/v1/msp/products/map", views.MapProductsView.as_view(), name="msp-map"),
    path("api/v1/msp/products/unmap", views.UnmapProductsView.as_view(), name="msp-unmap"),
    path("api/v1/msp/products/<str:product_id>/route", views.ProductRouteView.as_view(), name="msp-product-route"),
    path("api/v1/msp/products/<str:product_id>/lookups", views.ProductLookupsView.as_view(),
         name="msp-product-lookups"),
    path("api/v1/msp/tenant-registrations", views.TenantRegistrationListView.as_view(),
         name="msp-tenant-registrations"),
    path("api/v1/msp/tenant-registrations/<int:pk>", views.TenantRegistrationDetailView.as_view(),
         name="msp-tenant-registration"),
    path("api/v1/msp/tenant-registrations/<int:pk>/rotate", views.TenantRegistrationRotateView.as_view(),
         name="msp-tenant-registration-rotate"),
    path("api/v1/msp/hosted-tenants", views.HostedTenantView.as_view(), name="msp-hosted-tenants"),
    path("api/v1/msp/hosted-tenants/<str:schema_name>", views.HostedTenantDetailView.as_view(),
         name="msp-hosted-tenant"),
    path("api/v1/msp/tokens", views.ApiTokenView.as_view(), name="msp-tokens"),
    path("api/v1/vendor/msps", views.VendorMSPListView.as_view(), name="vendor-msps"),
    path("api/v1/vendor/msps/<slug:slug>/allocate", views.VendorAllocateView.as_view(), name="vendor-allocate"),
    path("api/v1/vendor/products/<str:product_id>/route", views.VendorProductRouteView.as_view(),
         name="vendor-product-route"),
    path("api/v1/vendor/products/<str:product_id>/lookups", views.VendorProductLookupsView.as_view(),
         name="vendor-product-lookups"),
]
