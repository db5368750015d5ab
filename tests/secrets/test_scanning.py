"""The search for secrets finds them in each encoding and reports them without their value."""

from __future__ import annotations

import base64
from urllib.parse import quote

from tests.factories import key_pem, make_key
from tests.secrets.scanning import SecretRegistry, find_secrets

SECRET = "ztsp_tk_0123456789ab_Zm9vYmFyLWJhei/+=="


def _registry() -> SecretRegistry:
    registry = SecretRegistry()
    registry.add_text("tenant access key", SECRET)
    return registry


def test_clear_secret_is_found_with_its_line():
    findings = find_secrets(f"first line\nAuthorization: Bearer {SECRET}\n", _registry().needles, where="web.log")

    assert findings == ["tenant access key (clear) in web.log line 2"]


def test_encoded_secret_is_found():
    encoded = {
        "base64": base64.b64encode(SECRET.encode()).decode(),
        "hex": SECRET.encode().hex().upper(),
        "url-encoded": quote(SECRET, safe=""),
    }
    for encoding, text in encoded.items():
        findings = find_secrets(f"value={text}", _registry().needles, where="worker.log")

        assert any(f"({encoding})" in finding for finding in findings), encoding


def test_finding_never_contains_the_secret():
    findings = find_secrets(SECRET, _registry().needles, where="gateway.log")

    assert findings
    assert all(SECRET not in finding and SECRET[12:] not in finding for finding in findings)


def test_registry_repr_hides_the_secret():
    assert SECRET not in repr(_registry())
    assert SECRET not in repr(_registry().needles)


def test_private_key_pem_line_is_found():
    key = make_key()
    registry = SecretRegistry()
    registry.add_private_key("EC private key", key)
    pem_line = key_pem(key).decode().splitlines()[1]

    findings = find_secrets(f"key material: {pem_line}", registry.needles, where="pytest.log")

    assert findings


def test_unrelated_text_is_not_a_finding():
    assert find_secrets("Tunnel up: EC100:1f86c7c6 in acme", _registry().needles, where="gateway.log") == []


def test_public_key_pem_lines_are_not_needles():
    """A private key PEM line made only of public key bytes would match the certificate by chance."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    registry = SecretRegistry()
    registry.add_private_key("CA private key", key)
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)

    pem_needles = [needle for needle in registry.needles if needle.encoding.startswith("PEM line")]

    assert pem_needles
    assert all(base64.b64decode(needle.text) not in public_der for needle in pem_needles)
