"""The access matrix: every URL pattern of both URLconfs, and what each persona gets there.

A row is one request (URL pattern and method) with the outcome class each
persona must get. Public-host rows are sent to ``localhost``, tenant-host
rows to tenant 1 (``acme``) with ids of tenant 1's objects, or of MSP A's
objects on the public host. Outcome classes:

- ``allowed``: the request passed authentication and authorization, so it
  got a 2xx, a redirect to anything but a sign-in page, or a 400 or 409 from
  the checks of its body or of the object's state.
- ``401``, ``403``, ``404``: that status. Another MSP's or tenant's object
  reads as 404, exactly like a missing one.
- ``login``: a redirect to a sign-in page.

Rows of the operations endpoints (``ops.urls``) are sent to ``localhost`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.isolation.conftest import (
    CONFIG_BODY,
    EC_PROVISIONING,
    EC_T1,
    MSP_A,
    MSP_B,
    PERSONAS,
    T1_ADMIN,
    VENDOR_ADMIN,
)

ALLOWED = "allowed"
LOGIN = "login"
UNAUTHORIZED = "401"
FORBIDDEN = "403"
NOT_FOUND = "404"

PUBLIC = "public"
TENANT = "tenant"
# ops.urls, which ops.middleware.OpsMiddleware serves at the public host names before the tenant lookup.
OPS = "ops"


def expect(default: str, **overrides: str) -> dict[str, str]:
    """Return an outcome for every persona: ``default``, except the personas named in ``overrides``."""
    unknown = set(overrides) - set(PERSONAS)
    assert not unknown, f"unknown personas {unknown}"
    return {persona: overrides.get(persona, default) for persona in PERSONAS}


EVERYONE = expect(ALLOWED)
# MSP endpoints: MSP tokens and MSP users only. Vendor staff are signed in, but act for no MSP.
MSP_API = expect(UNAUTHORIZED, **{VENDOR_ADMIN: FORBIDDEN, MSP_A: ALLOWED, MSP_B: ALLOWED})
MSP_API_OBJECT_OF_A = {**MSP_API, MSP_B: NOT_FOUND}
VENDOR_API = expect(UNAUTHORIZED, **{VENDOR_ADMIN: ALLOWED, MSP_A: FORBIDDEN, MSP_B: FORBIDDEN})
MSP_PAGE = expect(LOGIN, **{VENDOR_ADMIN: FORBIDDEN, MSP_A: ALLOWED, MSP_B: ALLOWED})
MSP_PAGE_OBJECT_OF_A = {**MSP_PAGE, MSP_B: NOT_FOUND}
ADMIN = expect(LOGIN, **{VENDOR_ADMIN: ALLOWED})
# Admin views that staff reach but that reject or miss the object id 0 of the rows below.
STAFF_FORBIDDEN = {**ADMIN, VENDOR_ADMIN: FORBIDDEN}
STAFF_NOT_FOUND = {**ADMIN, VENDOR_ADMIN: NOT_FOUND}
ZTP = expect(UNAUTHORIZED, **{EC_PROVISIONING: ALLOWED})
# Tenant host (tenant 1): its admin only. Tenant 2's admin sends valid credentials of the wrong schema.
DIRECTOR_API = expect(UNAUTHORIZED, **{T1_ADMIN: ALLOWED})
DIRECTOR_PAGE = expect(LOGIN, **{T1_ADMIN: ALLOWED})
DIRECTOR_JSON = expect(UNAUTHORIZED, **{T1_ADMIN: ALLOWED})
EC_API = expect(UNAUTHORIZED, **{EC_T1: ALLOWED})
# Logging out ends at the sign-in page for every persona.
LOGOUT = expect(LOGIN)

# How a row's persona authenticates: its default header, EST Basic, or the poll token of its own request.
DEFAULT_AUTH = "default"
EST_AUTH = "est"
POLL_AUTH = "poll"


@dataclass(frozen=True)
class Row:
    name: str
    urlconf: str
    route: str
    method: str
    path: str
    expected: dict[str, str]
    body: object = None
    body_format: str = "json"
    auth: str = DEFAULT_AUTH

    def url(self, objects) -> str:
        return self.path.format(o=objects)

    def request_body(self, objects):
        return self.body(objects) if callable(self.body) else self.body


def _public(name, route, method, expected, path=None, **kwargs) -> Row:
    return Row(name, PUBLIC, route, method, path or "/" + route, expected, **kwargs)


def _tenant(name, route, method, expected, path=None, **kwargs) -> Row:
    return Row(name, TENANT, route, method, path or "/" + route, expected, **kwargs)


def _ztp_report_body(objects) -> dict:
    return {"product_id": objects.a_product_id, "director_url": "http://acme.localhost",
            "certificate_serial": "01"}


PROVISION_ROWS = [
    _public("root_redirect", "", "get", EVERYONE),
    _public("api_schema", "api/schema/", "get", EVERYONE),
    _public("api_docs", "api/docs/", "get", EVERYONE),
    _public("ztp_lookup", "api/v1/ztp/lookup", "post", ZTP,
            body=lambda o: {"product_id": o.a_product_id, "facts": {}}),
    _public("ztp_report", "api/v1/ztp/report", "post", ZTP, body=_ztp_report_body),
]

MSP_API_ROWS = [
    _public("msp_api_products_list", "api/v1/msp/products", "get", MSP_API),
    _public("msp_api_products_claim", "api/v1/msp/products/claim", "post", MSP_API,
            body=lambda o: {"product_ids": [o.a_product_id]}),
    _public("msp_api_products_map", "api/v1/msp/products/map", "post", MSP_API_OBJECT_OF_A,
            body=lambda o: {"tenant_registration": o.a_registration_id, "product_ids": [o.a_product_id]}),
    _public("msp_api_products_unmap", "api/v1/msp/products/unmap", "post", MSP_API,
            body=lambda o: {"product_ids": [o.a_product_id]}),
    _public("msp_api_product_route", "api/v1/msp/products/<str:product_id>/route", "get", MSP_API_OBJECT_OF_A,
            path="/api/v1/msp/products/{o.a_product_id}/route"),
    _public("msp_api_product_lookups", "api/v1/msp/products/<str:product_id>/lookups", "get",
            MSP_API_OBJECT_OF_A, path="/api/v1/msp/products/{o.a_product_id}/lookups"),
    _public("msp_api_tenants_list", "api/v1/msp/tenant-registrations", "get", MSP_API),
    _public("msp_api_tenants_create", "api/v1/msp/tenant-registrations", "post", MSP_API, body={}),
    _public("msp_api_tenant_read", "api/v1/msp/tenant-registrations/<int:pk>", "get", MSP_API_OBJECT_OF_A,
            path="/api/v1/msp/tenant-registrations/{o.a_registration_id}"),
    _public("msp_api_tenant_update", "api/v1/msp/tenant-registrations/<int:pk>", "patch", MSP_API_OBJECT_OF_A,
            path="/api/v1/msp/tenant-registrations/{o.a_registration_id}", body={"name": "Renamed"}),
    _public("msp_api_tenant_delete", "api/v1/msp/tenant-registrations/<int:pk>", "delete", MSP_API_OBJECT_OF_A,
            path="/api/v1/msp/tenant-registrations/{o.a_registration_id}"),
    _public("msp_api_tenant_rotate", "api/v1/msp/tenant-registrations/<int:pk>/rotate", "post",
            MSP_API_OBJECT_OF_A, path="/api/v1/msp/tenant-registrations/{o.a_registration_id}/rotate", body={}),
    _public("msp_api_hosted_tenant_create", "api/v1/msp/hosted-tenants", "post", MSP_API, body={}),
    _public("msp_api_hosted_tenant_delete", "api/v1/msp/hosted-tenants/<str:schema_name>", "delete",
            MSP_API_OBJECT_OF_A, path="/api/v1/msp/hosted-tenants/{o.a_spare_schema}"),
    # Token creation takes a signed-in MSP user, never a token: the MSP personas' sessions pass here.
    _public("msp_api_tokens_create", "api/v1/msp/tokens", "post", MSP_API, body={"name": "isolation"}),
]

VENDOR_API_ROWS = [
    _public("vendor_api_msps_list", "api/v1/vendor/msps", "get", VENDOR_API),
    _public("vendor_api_msps_create", "api/v1/vendor/msps", "post", VENDOR_API, body={}),
    _public("vendor_api_allocate", "api/v1/vendor/msps/<slug:slug>/allocate", "post", VENDOR_API,
            path="/api/v1/vendor/msps/{o.a_slug}/allocate", body={"product_ids": []}),
    _public("vendor_api_product_route", "api/v1/vendor/products/<str:product_id>/route", "get", VENDOR_API,
            path="/api/v1/vendor/products/{o.a_product_id}/route"),
    _public("vendor_api_product_lookups", "api/v1/vendor/products/<str:product_id>/lookups", "get", VENDOR_API,
            path="/api/v1/vendor/products/{o.a_product_id}/lookups"),
]

PORTAL_ROWS = [
    _public("portal_dashboard", "portal/", "get", MSP_PAGE),
    _public("portal_login", "portal/login/", "get", EVERYONE),
    _public("portal_signup", "portal/signup/", "get", EVERYONE),
    _public("portal_claim_form", "portal/claim/", "get", MSP_PAGE),
    _public("portal_claim", "portal/claim/", "post", MSP_PAGE, body={}, body_format="form"),
    _public("portal_tenants", "portal/tenants/", "get", MSP_PAGE),
    _public("portal_hosted_tenant_create", "portal/tenants/hosted/", "post", MSP_PAGE, body={},
            body_format="form"),
    _public("portal_tenant_job", "portal/tenants/jobs/<uuid:job_id>/", "get", MSP_PAGE_OBJECT_OF_A,
            path="/portal/tenants/jobs/{o.a_job_id}/"),
    _public("portal_tenant_job_status", "portal/tenants/jobs/<uuid:job_id>/status/", "get", MSP_PAGE_OBJECT_OF_A,
            path="/portal/tenants/jobs/{o.a_job_id}/status/"),
    _public("portal_tenant_job_access_key", "portal/tenants/jobs/<uuid:job_id>/access-key/", "post",
            MSP_PAGE_OBJECT_OF_A, path="/portal/tenants/jobs/{o.a_job_id}/access-key/", body={},
            body_format="form"),
    _public("portal_external_tenant_register", "portal/tenants/external/", "post", MSP_PAGE, body={},
            body_format="form"),
    _public("portal_tenant_rotate", "portal/tenants/<int:pk>/rotate/", "post", MSP_PAGE_OBJECT_OF_A,
            path="/portal/tenants/{o.a_registration_id}/rotate/", body={}, body_format="form"),
    _public("portal_products", "portal/products/", "get", MSP_PAGE),
    _public("portal_product_selection", "portal/products/selection/", "post", MSP_PAGE, body={},
            body_format="form"),
    _public("portal_map_csv", "portal/products/map-csv/", "post", MSP_PAGE, body={}, body_format="form"),
    _public("portal_product", "portal/products/<str:product_id>/", "get", MSP_PAGE_OBJECT_OF_A,
            path="/portal/products/{o.a_product_id}/"),
    _public("portal_tokens", "portal/tokens/", "get", MSP_PAGE),
    _public("portal_token_create", "portal/tokens/", "post", MSP_PAGE, body={}, body_format="form"),
    _public("portal_token_revoke", "portal/tokens/<int:pk>/revoke/", "post", MSP_PAGE_OBJECT_OF_A,
            path="/portal/tokens/{o.a_token_id}/revoke/", body={}, body_format="form"),
    _public("portal_logout", "portal/logout/", "post", LOGOUT, body={}, body_format="form"),
    _public("portal_password_reset", "portal/password-reset/", "get", EVERYONE),
    _public("portal_password_reset_sent", "portal/password-reset/sent/", "get", EVERYONE),
    _public("portal_password_reset_confirm", "portal/password-reset/<uidb64>/<token>/", "get", EVERYONE,
            path="/portal/password-reset/MQ/invalid-token/"),
    _public("portal_password_reset_done", "portal/password-reset/done/", "get", EVERYONE),
]

# Models registered in the vendor admin. A new registration changes the URL
# patterns, so the completeness test fails until it is listed here.
ADMIN_MODELS = (
    "tenants/tenant", "audit/auditevent", "provisioning/product", "provisioning/provisioningaccesskey",
    "provisioning/productmodel", "provisioning/importbatch", "msp/msp", "msp/mspmembership",
    "msp/mspapitoken", "msp/tenantregistration", "msp/mspsignuprequest", "provisioning/lookupevent",
    "auth/group", "auth/user",
)
# Admin views of one object, each given object id 0, which no row has: staff
# are redirected to the admin index with a message, everyone else to sign-in.
ADMIN_OBJECT_VIEWS = (("history", "<path:object_id>/history/"), ("delete", "<path:object_id>/delete/"),
                      ("change", "<path:object_id>/change/"), ("redirect", "<path:object_id>/"))
ADMIN_APP_LIST_ROUTE = "admin/^(?P<app_label>tenants|audit|provisioning|msp|auth)/$"
# Models whose admin lets no one add rows there (they are made by imports, services or sign-up) or delete
# them (audit and history rows, and rows with their own revoke or delete action): even staff get 403.
ADMIN_NO_ADD = {"audit/auditevent", "provisioning/lookupevent", "provisioning/importbatch", "provisioning/product",
                "msp/mspapitoken", "msp/mspsignuprequest", "msp/tenantregistration", "tenants/tenant"}
ADMIN_NO_DELETE = {"audit/auditevent", "provisioning/lookupevent", "provisioning/importbatch",
                   "provisioning/provisioningaccesskey", "tenants/tenant"}


def _admin_rows() -> list[Row]:
    rows = [
        _public("admin_index", "admin/", "get", ADMIN),
        _public("admin_login", "admin/login/", "get", EVERYONE),
        # Anyone but staff is redirected to the admin index, which then redirects to the sign-in page.
        _public("admin_logout", "admin/logout/", "post", EVERYONE, body={}, body_format="form"),
        _public("admin_password_change", "admin/password_change/", "get", ADMIN),
        _public("admin_password_change_done", "admin/password_change/done/", "get", ADMIN),
        # Without its query parameters the autocomplete view rejects even staff.
        _public("admin_autocomplete", "admin/autocomplete/", "get", STAFF_FORBIDDEN),
        _public("admin_jsi18n", "admin/jsi18n/", "get", ADMIN),
        _public("admin_view_on_site", "admin/r/<path:content_type_id>/<path:object_id>/", "get", STAFF_NOT_FOUND,
                path="/admin/r/0/0/"),
        _public("admin_app_list", ADMIN_APP_LIST_ROUTE, "get", ADMIN, path="/admin/msp/"),
        _public("admin_unknown_page", "admin/(?P<url>.*)$", "get", STAFF_NOT_FOUND, path="/admin/no-such-page/"),
        _public("admin_user_password", "admin/auth/user/<id>/password/", "get", STAFF_NOT_FOUND,
                path="/admin/auth/user/0/password/"),
    ]
    for model in ADMIN_MODELS:
        slug = model.replace("/", "_")
        prefix = f"admin/{model}/"
        rows.append(_public(f"admin_{slug}_changelist", prefix, "get", ADMIN))
        add_expected = STAFF_FORBIDDEN if model in ADMIN_NO_ADD else ADMIN
        rows.append(_public(f"admin_{slug}_add", prefix + "add/", "get", add_expected))
        for view, suffix in ADMIN_OBJECT_VIEWS:
            view_expected = STAFF_FORBIDDEN if view == "delete" and model in ADMIN_NO_DELETE else ADMIN
            rows.append(_public(f"admin_{slug}_{view}", prefix + suffix, "get", view_expected,
                                path=f"/{prefix}{suffix.replace('<path:object_id>', '0')}"))
    return rows


EC_ROWS = [
    _tenant("ec_onboard", "api/v1/onboard", "post", EC_API,
            body=lambda o: {"product_id": o.ec_product_id, "csr": o.ec_csr, "facts": {}}),
    # Under ASGI, config.asgi serves this route before Django; the view here keeps the same contract.
    _tenant("ec_onboard_poll", "api/v1/onboard/<uuid:request_id>", "get", EC_API,
            path="/api/v1/onboard/{o.t1.pending_request_id}?wait=0", auth=POLL_AUTH),
    _tenant("pki_ca_chain", "api/v1/pki/ca", "get", EVERYONE),
    _tenant("pki_crl", "api/v1/pki/crl", "get", EVERYONE),
    _tenant("pki_crl_by_ca", "api/v1/pki/crl/<str:key_id>", "get", EVERYONE,
            path="/api/v1/pki/crl/{o.t1.ca_key_id}"),
    _tenant("est_cacerts", ".well-known/est/cacerts", "get", EVERYONE),
    _tenant("est_simpleenroll", ".well-known/est/simpleenroll", "post", EC_API, auth=EST_AUTH,
            body=lambda o: o.ec_csr, body_format="pkcs10"),
    # Over plain HTTP no one has a TLS client certificate; tests/est covers the HTTPS server.
    _tenant("est_simplereenroll", ".well-known/est/simplereenroll", "post", expect(UNAUTHORIZED),
            body=lambda o: o.ec_csr, body_format="pkcs10"),
]

_EC = "api/v1/director/edge-controllers/<str:product_id>"
_EC_PATH = "/api/v1/director/edge-controllers/{o.t1.product_id}"
_POLICY = "api/v1/director/policies/<int:policy_id>"
_POLICY_PATH = "/api/v1/director/policies/{o.t1.policy_id}"

DIRECTOR_API_ROWS = [
    _tenant("director_api_requests_list", "api/v1/director/onboard-requests", "get", DIRECTOR_API),
    _tenant("director_api_request_approve", "api/v1/director/onboard-requests/<uuid:request_id>/approve", "post",
            DIRECTOR_API, path="/api/v1/director/onboard-requests/{o.t1.pending_request_id}/approve", body={}),
    _tenant("director_api_request_reject", "api/v1/director/onboard-requests/<uuid:request_id>/reject", "post",
            DIRECTOR_API, path="/api/v1/director/onboard-requests/{o.t1.pending_request_id}/reject", body={}),
    _tenant("director_api_ecs_list", "api/v1/director/edge-controllers", "get", DIRECTOR_API),
    _tenant("director_api_ec_certificates", f"{_EC}/certificates", "get", DIRECTOR_API,
            path=f"{_EC_PATH}/certificates"),
    _tenant("director_api_ec_revoke", f"{_EC}/revoke-certificate", "post", DIRECTOR_API,
            path=f"{_EC_PATH}/revoke-certificate", body={"reason": "unspecified"}),
    _tenant("director_api_ec_decommission", f"{_EC}/decommission", "post", DIRECTOR_API,
            path=f"{_EC_PATH}/decommission", body={}),
    _tenant("director_api_ec_config", f"{_EC}/config", "get", DIRECTOR_API, path=f"{_EC_PATH}/config"),
    _tenant("director_api_ec_manual_config_set", f"{_EC}/manual-config", "put", DIRECTOR_API,
            path=f"{_EC_PATH}/manual-config", body={"body": CONFIG_BODY}),
    _tenant("director_api_ec_manual_config_clear", f"{_EC}/manual-config", "delete", DIRECTOR_API,
            path=f"{_EC_PATH}/manual-config"),
    _tenant("director_api_policies_list", "api/v1/director/policies", "get", DIRECTOR_API),
    _tenant("director_api_policies_create", "api/v1/director/policies", "post", DIRECTOR_API, body={}),
    _tenant("director_api_policy_read", _POLICY, "get", DIRECTOR_API, path=_POLICY_PATH),
    _tenant("director_api_policy_update", _POLICY, "patch", DIRECTOR_API, path=_POLICY_PATH,
            body={"description": "changed"}),
    _tenant("director_api_policy_delete", _POLICY, "delete", DIRECTOR_API, path=_POLICY_PATH),
    _tenant("director_api_policy_versions", f"{_POLICY}/versions", "get", DIRECTOR_API,
            path=f"{_POLICY_PATH}/versions"),
    _tenant("director_api_policy_version_add", f"{_POLICY}/versions", "post", DIRECTOR_API,
            path=f"{_POLICY_PATH}/versions", body={"body": CONFIG_BODY}),
    _tenant("director_api_policy_tags", f"{_POLICY}/tags", "put", DIRECTOR_API, path=f"{_POLICY_PATH}/tags",
            body={"tags": []}),
    _tenant("director_api_policy_push", f"{_POLICY}/push", "post", DIRECTOR_API, path=f"{_POLICY_PATH}/push",
            body=lambda o: {"product_ids": [o.t1.product_id]}),
    _tenant("director_api_push_job", "api/v1/director/config-push-jobs/<int:job_id>", "get", DIRECTOR_API,
            path="/api/v1/director/config-push-jobs/{o.t1.push_job_id}"),
]

DIRECTOR_PAGE_ROWS = [
    _tenant("director_dashboard", "", "get", DIRECTOR_PAGE),
    _tenant("director_decide_many", "requests/decide", "post", DIRECTOR_PAGE, body={}, body_format="form"),
    _tenant("director_request_approve", "requests/<uuid:request_id>/approve", "post", DIRECTOR_PAGE,
            path="/requests/{o.t1.pending_request_id}/approve", body={}, body_format="form"),
    _tenant("director_request_reject", "requests/<uuid:request_id>/reject", "post", DIRECTOR_PAGE,
            path="/requests/{o.t1.pending_request_id}/reject", body={}, body_format="form"),
    _tenant("director_controller_status", "controllers/status", "get", DIRECTOR_JSON,
            path="/controllers/status?ids={o.t1.controller_id}"),
    _tenant("director_controller", "controllers/<int:controller_id>/", "get", DIRECTOR_PAGE,
            path="/controllers/{o.t1.controller_id}/"),
    _tenant("director_controller_revoke", "controllers/<int:controller_id>/revoke", "post", DIRECTOR_PAGE,
            path="/controllers/{o.t1.controller_id}/revoke", body={}, body_format="form"),
    _tenant("director_controller_decommission", "controllers/<int:controller_id>/decommission", "post",
            DIRECTOR_PAGE, path="/controllers/{o.t1.controller_id}/decommission", body={}, body_format="form"),
    _tenant("director_controller_manual_config", "controllers/<int:controller_id>/manual-config", "post",
            DIRECTOR_PAGE, path="/controllers/{o.t1.controller_id}/manual-config", body={}, body_format="form"),
    _tenant("director_policies", "policies/", "get", DIRECTOR_PAGE),
    _tenant("director_policy", "policies/<int:policy_id>/", "get", DIRECTOR_PAGE,
            path="/policies/{o.t1.policy_id}/"),
    _tenant("director_policy_new_version", "policies/<int:policy_id>/versions", "post", DIRECTOR_PAGE,
            path="/policies/{o.t1.policy_id}/versions", body={}, body_format="form"),
    _tenant("director_policy_tags", "policies/<int:policy_id>/tags", "post", DIRECTOR_PAGE,
            path="/policies/{o.t1.policy_id}/tags", body={}, body_format="form"),
    _tenant("director_policy_push", "policies/<int:policy_id>/push", "post", DIRECTOR_PAGE,
            path="/policies/{o.t1.policy_id}/push", body={}, body_format="form"),
    _tenant("director_policy_delete", "policies/<int:policy_id>/delete", "post", DIRECTOR_PAGE,
            path="/policies/{o.t1.policy_id}/delete", body={}, body_format="form"),
    _tenant("director_tags", "tags/", "get", DIRECTOR_PAGE),
    _tenant("director_tag_create", "tags/create", "post", DIRECTOR_PAGE, body={}, body_format="form"),
    _tenant("director_tag_rename", "tags/<int:tag_id>/rename", "post", DIRECTOR_PAGE,
            path="/tags/{o.t1.tag_id}/rename", body={}, body_format="form"),
    _tenant("director_tag_delete", "tags/<int:tag_id>/delete", "post", DIRECTOR_PAGE,
            path="/tags/{o.t1.tag_id}/delete", body={}, body_format="form"),
    _tenant("director_login", "accounts/login/", "get", EVERYONE),
    _tenant("director_logout", "accounts/logout/", "post", LOGOUT, body={}, body_format="form"),
]

OPS_ROWS = [
    Row("ops_liveness", OPS, "healthz", "get", "/healthz", EVERYONE),
    Row("ops_readiness", OPS, "readyz", "get", "/readyz", EVERYONE),
    # With no ZTSP_METRICS_TOKEN, as in the tests, metrics go to loopback clients, which the test client is.
    Row("ops_metrics", OPS, "metrics", "get", "/metrics", EVERYONE),
]

ROWS: list[Row] = [*PROVISION_ROWS, *OPS_ROWS, *MSP_API_ROWS, *VENDOR_API_ROWS, *PORTAL_ROWS, *_admin_rows(), *EC_ROWS,
                   *DIRECTOR_API_ROWS, *DIRECTOR_PAGE_ROWS]

# Sign-in pages that a ``login`` redirect may point at.
LOGIN_PATHS = ("/accounts/login/", "/portal/login/", "/admin/login/")


def classify(response) -> str:
    """Return the outcome class of a response (see the module docstring)."""
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = response["Location"]
        return LOGIN if location.split("?")[0].endswith(LOGIN_PATHS) else ALLOWED
    if 200 <= status < 300 or status in (400, 409):
        return ALLOWED
    return str(status)


Cases = list[tuple[Row, str]]


def cases(rows: list[Row] = ROWS, personas=PERSONAS, select: Callable[[Row], bool] = lambda row: True) -> Cases:
    return [(row, persona) for row in rows if select(row) for persona in personas]
