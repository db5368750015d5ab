"""Certificate renewal over the tunnel, with a raw TLS client against an in-process gateway.

The gateway reads committed rows from its own threads, so these tests commit
their data and each onboards new Product IDs.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from cryptography import x509
from django_tenants.utils import schema_context

from tests.factories import make_csr, make_key, new_product_id

from .helpers import IssuedEc, onboard_ec

pytestmark = pytest.mark.e2e


def _certificates(ec: IssuedEc) -> list:
    from pki.models import IssuedCertificate

    with schema_context(ec.schema_name):
        return list(IssuedCertificate.objects.filter(product_id=ec.product_id).select_related("renewal_of")
                    .order_by("issued_at"))


@pytest.fixture
def renewal(world, connect):
    """An EC of tenant A that renewed over its open tunnel: (EC before, tunnel, reply, EC after)."""
    ec = onboard_ec(world.a)
    tunnel, hello = connect(ec)
    assert hello["type"] == "hello", hello
    csr_pem, new_key = make_csr(ec.product_id)

    tunnel.send({"type": "renew", "csr": csr_pem})
    reply = tunnel.receive()

    assert reply["type"] == "renewed", reply
    renewed = IssuedEc(ec.schema_name, ec.product_id, new_key, reply["certificate"], reply["ca_chain"])
    return ec, tunnel, reply, renewed


def test_renewed_certificate_passes_openssl_verify(renewal, tmp_path):
    _ec, _tunnel, reply, renewed = renewal
    files = renewed.write_files(tmp_path / "renewed")

    verify = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(files["root"]),
         "-untrusted", str(files["issuing"]), str(files["cert"])],
        capture_output=True, text=True, check=False,
    )

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert reply["certificate_serial"] == renewed.serial_hex
    leaf = x509.load_pem_x509_certificate(reply["certificate"].encode())
    assert leaf.public_key() == renewed.key.public_key()
    assert reply["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_renewal_revokes_old_certificate_as_superseded(renewal):
    ec, _tunnel, reply, _renewed = renewal

    old, new = _certificates(ec)

    assert old.serial_hex == ec.serial_hex
    assert old.revoked_at is not None
    assert old.revocation_reason == "superseded"
    assert new.serial_hex == reply["certificate_serial"]
    assert new.revoked_at is None
    assert new.source == "tunnel_renewal"
    assert new.renewal_of == old


def test_revocation_sweep_keeps_renewed_tunnel(renewal, gateway):
    ec, tunnel, reply, _renewed = renewal

    dropped = gateway.call(gateway.gateway.drop_revoked())
    tunnel.send({"type": "heartbeat", "seq": 1})

    assert dropped == 0
    assert tunnel.receive() == {"type": "heartbeat", "seq": 1}
    session = gateway.gateway.sessions[(ec.schema_name, ec.product_id)]
    assert session.peer.serial_hex == reply["certificate_serial"]


def test_reconnect_with_renewed_certificate_is_accepted(renewal, connect):
    _ec, _tunnel, _reply, renewed = renewal

    _tunnel2, hello = connect(renewed)

    assert hello["type"] == "hello", hello
    assert hello["product_id"] == renewed.product_id


def test_reconnect_with_old_certificate_is_rejected(renewal, connect):
    ec, _tunnel, _reply, _renewed = renewal

    _tunnel2, hello = connect(ec)

    assert hello == {"type": "error", "code": "certificate_revoked",
                     "detail": f"Certificate {ec.serial_hex} is revoked; re-onboard the EC."}


@pytest.mark.parametrize(
    ("csr_for", "code"),
    [("another_product", "csr_subject_mismatch"), ("rsa1024", "csr_weak_key"), ("not_pem", "csr_malformed")],
)
def test_bad_csr_rejected_and_tunnel_stays_up(world, connect, csr_for, code):
    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)
    if csr_for == "another_product":
        csr_pem, _key = make_csr(new_product_id())
    elif csr_for == "rsa1024":
        csr_pem, _key = make_csr(ec.product_id, make_key("rsa1024"))
    else:
        csr_pem = "not a CSR"

    tunnel.send({"type": "renew", "csr": csr_pem})
    reply = tunnel.receive()
    tunnel.send({"type": "heartbeat", "seq": 2})

    assert reply["type"] == "error", reply
    assert reply["code"] == code
    assert tunnel.receive() == {"type": "heartbeat", "seq": 2}
    certificates = _certificates(ec)
    assert [certificate.serial_hex for certificate in certificates] == [ec.serial_hex]
    assert certificates[0].revoked_at is None


def test_renew_without_csr_is_rejected(world, connect):
    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)

    tunnel.send({"type": "renew"})
    reply = tunnel.receive()

    assert reply["type"] == "error"
    assert reply["code"] == "csr_malformed"
    assert len(_certificates(ec)) == 1


def test_second_renewal_is_rate_limited(renewal):
    ec, tunnel, _reply, _renewed = renewal
    csr_pem, _key = make_csr(ec.product_id)

    tunnel.send({"type": "renew", "csr": csr_pem})
    reply = tunnel.receive()

    assert reply["type"] == "error", reply
    assert reply["code"] == "renew_rate_limited"
    assert 0 < reply["retry_after"] <= 60
    assert len(_certificates(ec)) == 2


def test_rate_limit_holds_across_reconnect(renewal, connect):
    _ec, _tunnel, _reply, renewed = renewal
    tunnel, _hello = connect(renewed)
    csr_pem, _key = make_csr(renewed.product_id)

    tunnel.send({"type": "renew", "csr": csr_pem})
    reply = tunnel.receive()

    assert reply["code"] == "renew_rate_limited", reply
    assert len(_certificates(renewed)) == 2


def test_renew_while_one_in_flight_is_rejected(world, connect):
    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)
    first_csr, _key = make_csr(ec.product_id)
    second_csr, _key = make_csr(ec.product_id)

    # Both lines arrive together, so the second is read while the first renewal runs.
    lines = [json.dumps({"type": "renew", "csr": csr}) + "\n" for csr in (first_csr, second_csr)]
    tunnel.tls.sendall("".join(lines).encode())
    replies = [tunnel.receive(), tunnel.receive()]

    assert [reply["type"] for reply in replies] == ["error", "renewed"], replies
    assert replies[0]["code"] == "renew_in_progress"
    assert len(_certificates(ec)) == 2
