"""Broken CSRs at ``POST /api/v1/onboard`` and at the EST enrollment endpoints.

Each form gets 400 with the ``csr_*`` code that names the fault, and nothing is
written: no EC, no onboard request, no certificate, no audit event. Text before
or after a well-formed PEM block is not a fault: RFC 7468 section 2 allows it,
so such a CSR is accepted and stored without that text.
"""

from __future__ import annotations

import base64
import re

import pytest
from django.test import RequestFactory
from django_tenants.utils import schema_context

from pki.crypto import MAX_CSR_BYTES
from tests.badinput.csrs import broken_csrs, framed_pems, valid_pem
from tests.badinput.helpers import assert_error, onboard_client, snapshot
from tests.conftest import client_for
from tests.est.helpers import SIMPLEENROLL_URL, SIMPLEREENROLL_URL, basic_auth
from tests.factories import new_product_id
from tests.onboarding.helpers import approve_and_issue, onboard

# The onboard API allows 20 requests a minute per Product ID (ZTSP_THROTTLE_ONBOARD_PRODUCT), so each
# test builds its CSR for a new Product ID. This one only names the cases and fills the bodies.
PRODUCT_ID = new_product_id()
CORPUS = broken_csrs(PRODUCT_ID)
CORPUS_IDS = [csr.name for csr in CORPUS]
# Text before and after the PEM block is allowed (RFC 7468 section 2), and EST takes a bare base64 DER body.
EST_VALID = {"base64_der_without_armor"}
_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----")


def _der_base64(pem: str) -> str | None:
    """Return the base64 DER of a PEM made of exactly one well-formed block, or None."""
    match = _PEM_BODY.fullmatch(pem.strip())
    if match is None:
        return None
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except ValueError:
        return None
    return base64.encodebytes(der).decode()


def valid_pem_of(text: str) -> str:
    """Return the canonical PEM of the one CSR block inside ``text``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    block = text[text.index("-----BEGIN"):text.index("-----END CERTIFICATE REQUEST-----") + 33]
    return x509.load_pem_x509_csr(block.encode()).public_bytes(serialization.Encoding.PEM).decode()


def _broken(case: str, product_id: str):
    return next(csr for csr in broken_csrs(product_id) if csr.name == case)


def _post_onboard(world, csr: str, product_id: str):
    return onboard_client(world.a).post("/api/v1/onboard", {"product_id": product_id, "csr": csr, "facts": {}},
                                        format="json")


def _post_simpleenroll(world, body: str | bytes, product_id: str):
    return client_for(world.a.domain).post(SIMPLEENROLL_URL, body, content_type="application/pkcs10",
                                           **basic_auth(product_id, world.a.tenant_access_key))


@pytest.mark.parametrize("case", CORPUS_IDS)
def test_onboard_broken_csr_rejected(world, case):
    product_id = new_product_id()
    csr = _broken(case, product_id)
    before = snapshot(world)

    response = _post_onboard(world, csr.pem, product_id)

    assert_error(response, 400, csr.code)
    assert snapshot(world) == before


def test_onboard_empty_csr_rejected(world):
    before = snapshot(world)

    response = _post_onboard(world, "", new_product_id())

    assert_error(response, 400, "blank")
    assert snapshot(world) == before


def test_onboard_oversized_csr_rejected(world):
    before = snapshot(world)

    product_id = new_product_id()

    response = _post_onboard(world, valid_pem(product_id) + " " * MAX_CSR_BYTES, product_id)

    assert_error(response, 400, "max_length")
    assert snapshot(world) == before


@pytest.mark.parametrize("product_id", ["", "EC100", "EC100:not-a-uuid", "=cmd()", "EC100:" + "a" * 200])
def test_onboard_invalid_product_id_rejected(world, product_id):
    before = snapshot(world)

    response = _post_onboard(world, valid_pem(new_product_id()), product_id)

    assert_error(response, 400, "blank" if not product_id else "max_length" if len(product_id) > 200
                 else "invalid_product_id")
    assert snapshot(world) == before


@pytest.mark.parametrize("case", [case for case in CORPUS_IDS if case not in EST_VALID])
def test_simpleenroll_broken_csr_as_pem_rejected(world, case):
    product_id = new_product_id()
    csr = _broken(case, product_id)
    before = snapshot(world)

    response = _post_simpleenroll(world, csr.pem.encode(), product_id)

    assert_error(response, 400, csr.code)
    assert snapshot(world) == before


@pytest.mark.parametrize("case", [csr.name for csr in CORPUS if _der_base64(csr.pem)])
def test_simpleenroll_broken_csr_as_base64_rejected(world, case):
    product_id = new_product_id()
    csr = _broken(case, product_id)
    before = snapshot(world)

    response = _post_simpleenroll(world, _der_base64(csr.pem), product_id)

    assert_error(response, 400, csr.code)
    assert snapshot(world) == before


@pytest.mark.parametrize(("name", "body"), [
    ("empty", b""),
    ("whitespace", b" \r\n\t"),
    ("invalid_base64", b"!!!not base64!!!"),
    ("raw_der", base64.b64decode(_der_base64(valid_pem(PRODUCT_ID)))),
    ("binary", bytes(range(256))),
    ("utf16", valid_pem(PRODUCT_ID).encode("utf-16")),
    ("json", b'{"csr": "x"}'),
    ("oversized_pem", (valid_pem(PRODUCT_ID) + " " * MAX_CSR_BYTES).encode()),
])
def test_simpleenroll_unreadable_body_rejected(world, name, body):
    before = snapshot(world)

    response = _post_simpleenroll(world, body, new_product_id())

    assert_error(response, 400, "csr_malformed")
    assert snapshot(world) == before


def test_simpleenroll_body_over_limit_returns_413(world):
    from django.conf import settings

    before = snapshot(world)

    response = _post_simpleenroll(world, b"A" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1), new_product_id())

    assert_error(response, 413, "body_too_large")
    assert snapshot(world) == before


@pytest.mark.parametrize("product_id", ["EC100", "EC100:not-a-uuid", "=cmd()"])
def test_simpleenroll_invalid_product_id_rejected(world, product_id):
    before = snapshot(world)

    response = _post_simpleenroll(world, _der_base64(valid_pem(new_product_id())), product_id)

    assert_error(response, 400, "invalid_product_id")
    assert snapshot(world) == before


@pytest.fixture
def issued_certificate(world):
    """An EC of tenant A with an active certificate, and that certificate's row."""
    from pki.models import IssuedCertificate

    submitted = onboard(world.a)
    approve_and_issue(world.a.tenant.schema_name, submitted.request_id)
    with schema_context(world.a.tenant.schema_name):
        return IssuedCertificate.objects.get(product_id=submitted.product_id, revoked_at__isnull=True)


def _reenroll(world, certificate_pem: str, body: str | bytes):
    """Call simplereenroll as the TLS server would, with ``certificate_pem`` as the TLS client certificate."""
    from est.views import SimpleReenrollView

    request = RequestFactory().post(SIMPLEREENROLL_URL, body, content_type="application/pkcs10",
                                    HTTP_HOST=world.a.domain)
    request.scope = {"type": "http", "extensions": {"tls": {"client_cert_chain": [certificate_pem],
                                                            "tls_version": 0x0304}}}
    request.tenant = world.a.tenant
    with schema_context(world.a.tenant.schema_name):
        response = SimpleReenrollView.as_view()(request)
    if hasattr(response, "render"):
        # DRF's error responses are rendered by the middleware this call skips.
        response.render()
    return response


@pytest.mark.parametrize("case", ["not_pem", "truncated_pem", "two_csrs", "empty_subject", "bad_signature",
                                  "other_product_id", "rsa_1024", "curve_secp256k1", "unknown_curve_oid", "ed25519"])
def test_simplereenroll_broken_csr_rejected(world, issued_certificate, case):
    csr = _broken(case, issued_certificate.product_id)
    before = snapshot(world)

    response = _reenroll(world, issued_certificate.certificate_pem, csr.pem)

    assert_error(response, 400, csr.code)
    assert snapshot(world) == before


@pytest.mark.parametrize("case", ["text_after", "text_before", "crlf_and_blank_lines"])
def test_onboard_stores_csr_without_surrounding_text(world, case):
    from onboarding.models import OnboardRequest

    product_id = new_product_id()
    pem = framed_pems(product_id)[case]

    response = _post_onboard(world, pem, product_id)

    assert response.status_code == 202, response.content
    with schema_context(world.a.tenant.schema_name):
        stored = OnboardRequest.objects.get(pk=response.json()["request_id"]).csr_pem
    assert stored == valid_pem_of(pem)


def test_onboard_nul_byte_after_csr_rejected(world):
    product_id = new_product_id()
    before = snapshot(world)

    response = _post_onboard(world, valid_pem(product_id) + "\x00", product_id)

    assert_error(response, 400, "null_characters_not_allowed")
    assert snapshot(world) == before


@pytest.mark.parametrize("case", ["text_after", "text_before", "crlf_and_blank_lines"])
def test_simpleenroll_accepts_surrounding_text(world, case):
    product_id = new_product_id()

    response = _post_simpleenroll(world, framed_pems(product_id)[case], product_id)

    assert response.status_code == 202, response.content
