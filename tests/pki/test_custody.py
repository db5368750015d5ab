"""Data key rotation: every secret at rest is re-encrypted under the newest key."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_tenants.utils import schema_context

from common import tokens
from pki import signers


def _open_every_secret(world) -> None:
    """Load every CA key and decrypt every registered access key; raises InvalidToken when one fails."""
    from msp.models import TenantRegistration
    from pki.models import IssuingCA
    from tenants.models import DeploymentRootCA

    for root in DeploymentRootCA.objects.all():
        signers.backend(root.key_backend).load(root.private_key_encrypted)
    for registration in TenantRegistration.objects.all():
        tokens.decrypt(registration.access_key_encrypted)
    for schema in ("acme", "globex"):
        with schema_context(schema):
            for issuing_ca in IssuingCA.objects.all():
                signers.backend(issuing_ca.key_backend).load(issuing_ca.private_key_encrypted)


def test_rotated_secrets_open_with_new_key_alone(world):
    new_key = Fernet.generate_key().decode()
    with override_settings(ZTSP_DATA_KEYS=[new_key, *settings.ZTSP_DATA_KEYS]):
        call_command("rotate_data_keys", stdout=StringIO())

    with override_settings(ZTSP_DATA_KEYS=[new_key]):
        _open_every_secret(world)


def test_secrets_do_not_open_with_new_key_before_rotation(world):
    with override_settings(ZTSP_DATA_KEYS=[Fernet.generate_key().decode()]), pytest.raises(tokens.InvalidToken):
        _open_every_secret(world)


def test_rotation_reports_counts(world):
    out = StringIO()
    with override_settings(ZTSP_DATA_KEYS=[Fernet.generate_key().decode(), *settings.ZTSP_DATA_KEYS]):
        call_command("rotate_data_keys", stdout=out)

    assert "1 root CA keys" in out.getvalue()
    assert "re-encrypted" in out.getvalue()


def test_check_names_secrets_no_key_opens(world):
    err = StringIO()
    with override_settings(ZTSP_DATA_KEYS=[Fernet.generate_key().decode()]), \
            pytest.raises(CommandError, match="could not be opened"):
        call_command("rotate_data_keys", "--check", stdout=StringIO(), stderr=err)

    assert "No key in ZTSP_DATA_KEYS opens the secret of root CA" in err.getvalue()


def test_check_writes_nothing(world):
    from tenants.models import DeploymentRootCA

    before = DeploymentRootCA.objects.values_list("private_key_encrypted", flat=True).first()
    with override_settings(ZTSP_DATA_KEYS=[Fernet.generate_key().decode(), *settings.ZTSP_DATA_KEYS]):
        call_command("rotate_data_keys", "--check", stdout=StringIO())

    assert DeploymentRootCA.objects.values_list("private_key_encrypted", flat=True).first() == before


def test_generate_key_prints_a_fernet_key(world):
    out = StringIO()

    call_command("rotate_data_keys", "--generate-key", stdout=out)

    Fernet(out.getvalue().strip().encode())


def test_software_signer_repr_hides_key():
    _reference, signer = signers.backend("software").generate("ec-p256")

    assert repr(signer) == "SoftwareSigner(ECPrivateKey)"


def test_unknown_backend_names_configured_ones():
    with pytest.raises(LookupError, match=r"'pkcs11' is not configured.*software"):
        signers.backend("pkcs11")


def test_malformed_data_key_names_its_position():
    from django.core.exceptions import ImproperlyConfigured

    from config.secrets import parse_data_keys

    with pytest.raises(ImproperlyConfigured, match="Key 2 of ZTSP_DATA_KEYS is not a Fernet key"):
        parse_data_keys(f"{Fernet.generate_key().decode()},notakey")


def test_empty_data_keys_are_rejected():
    from django.core.exceptions import ImproperlyConfigured

    from config.secrets import parse_data_keys

    with pytest.raises(ImproperlyConfigured, match="holds no key"):
        parse_data_keys(" , ")


def test_data_keys_are_split_and_trimmed():
    from config.secrets import parse_data_keys

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    assert parse_data_keys(f" {first} ,{second},") == [first, second]
