"""Requests an EC and a tenant admin make, and reads of a tenant's onboarding rows."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.conftest import ADMIN_PASSWORD, client_for
from tests.factories import make_csr, make_key, new_product_id

ONBOARD_URL = "/api/v1/onboard"
REQUESTS_URL = "/api/v1/director/onboard-requests"
CONTROLLERS_URL = "/api/v1/director/edge-controllers"
ADMIN_ACTOR = Actor.system("onboarding-tests")


@dataclass
class Onboarded:
    """An accepted onboard request: the EC's key and CSR, and the fields of the 202 response."""

    product_id: str
    key: object
    csr: str
    request_id: str
    poll_token: str
    body: dict


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def basic(username: str, password: str = ADMIN_PASSWORD) -> dict:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {encoded}"}


def post_onboard(host: str, access_key: str | None, body: dict, **extra):
    headers = bearer(access_key) if access_key is not None else {}
    return client_for(host).post(ONBOARD_URL, body, format="json", **headers, **extra)


def onboard(persona, product_id: str | None = None, *, key=None, facts: dict | None = None) -> Onboarded:
    """Submit a valid onboard request at the persona's tenant and check it was accepted."""
    product_id = product_id or new_product_id()
    key = key or make_key()
    csr, _ = make_csr(product_id, key)
    body = {"product_id": product_id, "csr": csr, "facts": facts if facts is not None else {"firmware": "1.2.0"}}
    response = post_onboard(persona.domain, persona.tenant_access_key, body)
    assert response.status_code == 202, response.content
    data = response.json()
    return Onboarded(product_id, key, csr, data["request_id"], data["poll_token"], data)


def poll(host: str, request_id: str, token: str | None, *, wait: str = "0"):
    headers = bearer(token) if token is not None else {}
    return client_for(host).get(f"{ONBOARD_URL}/{request_id}", {"wait": wait}, **headers)


def tamper_signature(csr_pem: str) -> str:
    """Flip the last byte of the CSR's DER, which lies inside the signature value."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def approve(schema: str, request_id: str, *, tags=()):
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request

    with schema_context(schema):
        return approve_onboard_request(OnboardRequest.objects.get(pk=request_id), actor=ADMIN_ACTOR, tags=tags)


def reject(schema: str, request_id: str):
    from onboarding.models import OnboardRequest
    from onboarding.services import reject_onboard_request

    with schema_context(schema):
        return reject_onboard_request(OnboardRequest.objects.get(pk=request_id), actor=ADMIN_ACTOR)


def issue(schema: str, request_id: str):
    """Run the certificate issuance that the Celery task would run after commit."""
    from onboarding.services import complete_issuance

    with schema_context(schema):
        return complete_issuance(request_id)


def approve_and_issue(schema: str, request_id: str, *, tags=()):
    approve(schema, request_id, tags=tags)
    return issue(schema, request_id)


def row_counts(schema: str) -> dict:
    """Count the tenant's onboarding, certificate and audit rows, to show what a request wrote."""
    from audit.models import AuditEvent
    from onboarding.models import EdgeController, OnboardRequest, Tag
    from pki.models import IssuedCertificate

    with schema_context(schema):
        return {
            "onboard_requests": OnboardRequest.objects.count(),
            "edge_controllers": EdgeController.objects.count(),
            "tags": Tag.objects.count(),
            "certificates": IssuedCertificate.objects.count(),
            "audit_events": AuditEvent.objects.filter(tenant_schema=schema).count(),
        }


def active_certificates(schema: str, product_id: str) -> list:
    from pki.models import IssuedCertificate

    with schema_context(schema):
        return list(IssuedCertificate.objects.filter(product_id=product_id, revoked_at__isnull=True))


def load_pem_chain(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())
