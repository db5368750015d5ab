import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ec_client.keys import (
    CertificateRejected,
    load_or_create_csr,
    load_or_create_key,
    verify_certificate,
)
from ec_client.state import load_device, load_state, write_device

from .servers import ThrowawayPki

PRODUCT_ID = "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"


def _pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_key_created_private_and_reused(tmp_path):
    first, created_first = load_or_create_key(tmp_path)
    second, created_second = load_or_create_key(tmp_path, "rsa2048")

    assert created_first
    assert not created_second
    assert isinstance(second, ec.EllipticCurvePrivateKey)
    assert first.private_numbers() == second.private_numbers()
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


def test_key_type_rsa2048(tmp_path):
    key, _ = load_or_create_key(tmp_path, "rsa2048")

    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def test_key_invalid_file_names_fix(tmp_path):
    (tmp_path / "key.pem").write_text("garbage")

    with pytest.raises(ValueError, match="delete the file"):
        load_or_create_key(tmp_path)


def test_csr_subject_is_product_id(tmp_path):
    key, _ = load_or_create_key(tmp_path)

    csr = x509.load_pem_x509_csr(load_or_create_csr(tmp_path, key, PRODUCT_ID).encode())

    assert csr.subject.rfc4514_string() == f"CN={PRODUCT_ID}"
    assert csr.is_signature_valid


def test_csr_reused_while_key_matches(tmp_path):
    key, _ = load_or_create_key(tmp_path)

    first = load_or_create_csr(tmp_path, key, PRODUCT_ID)
    second = load_or_create_csr(tmp_path, key, PRODUCT_ID)

    assert first == second


def test_verify_accepts_issued_certificate(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    leaf = _pem(pki.issue(key.public_key(), PRODUCT_ID))

    verified = verify_certificate(leaf, pki.chain_pem, key, PRODUCT_ID)

    assert verified.serial_hex == format(verified.leaf.serial_number, "x")


def test_verify_rejects_mismatched_key(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    other = ec.generate_private_key(ec.SECP256R1())
    leaf = _pem(pki.issue(other.public_key(), PRODUCT_ID))

    with pytest.raises(CertificateRejected, match=r"does not match key\.pem"):
        verify_certificate(leaf, pki.chain_pem, key, PRODUCT_ID)


def test_verify_rejects_wrong_common_name(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    leaf = _pem(pki.issue(key.public_key(), "EC100:00000000-0000-4000-8000-000000000000"))

    with pytest.raises(CertificateRejected, match="subject CN"):
        verify_certificate(leaf, pki.chain_pem, key, PRODUCT_ID)


def test_verify_rejects_expired_certificate(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    expired = datetime.now(UTC) - timedelta(seconds=1)
    leaf = _pem(pki.issue(key.public_key(), PRODUCT_ID, not_after=expired))

    with pytest.raises(CertificateRejected, match="expired"):
        verify_certificate(leaf, pki.chain_pem, key, PRODUCT_ID)


def test_verify_rejects_chain_without_root(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    leaf = _pem(pki.issue(key.public_key(), PRODUCT_ID))

    with pytest.raises(CertificateRejected, match="not self-signed"):
        verify_certificate(leaf, _pem(pki.issuing), key, PRODUCT_ID)


def test_verify_rejects_other_ca(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    leaf = _pem(ThrowawayPki().issue(key.public_key(), PRODUCT_ID))

    with pytest.raises(CertificateRejected, match="not issued by"):
        verify_certificate(leaf, pki.chain_pem, key, PRODUCT_ID)


def test_verify_rejects_non_ca_issuer(pki, tmp_path):
    key, _ = load_or_create_key(tmp_path)
    leaf = pki.issue(key.public_key(), PRODUCT_ID)
    # A chain whose "issuing CA" is an end-entity certificate with the right name.
    impostor = (
        x509.CertificateBuilder()
        .subject_name(pki.issuing.subject)
        .issuer_name(pki.root.subject)
        .public_key(pki.issuing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(minutes=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(pki.root_key, leaf.signature_hash_algorithm)
    )

    with pytest.raises(CertificateRejected, match="not a CA"):
        verify_certificate(_pem(leaf), _pem(impostor) + _pem(pki.root), key, PRODUCT_ID)


def test_write_device_round_trips(tmp_path):
    facts = {"model": "EC100", "firmware": "1.0.0", "serial": "S1", "macs": ["00:11:22:33:44:55"]}

    path = write_device(tmp_path / "ec", PRODUCT_ID, "http://localhost:8000/", "secret", facts)
    device = load_device(tmp_path / "ec")

    assert json.loads(path.read_text())["provision_url"] == "http://localhost:8000"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert device.product_id == PRODUCT_ID
    assert device.facts == facts
    assert "secret" not in repr(device)


def test_write_device_rejects_bad_product_id(tmp_path):
    with pytest.raises(ValueError, match="not a UUID"):
        write_device(tmp_path, "EC100:123", "http://localhost:8000", "secret", {})


def test_load_state_survives_corrupt_file(tmp_path):
    (tmp_path / "state.json").write_text("{not json")

    state = load_state(tmp_path)

    assert state.phase == "new"
    assert "fresh state" in state.last_error
