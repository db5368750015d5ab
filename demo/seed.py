"""Demo data for a development machine, made through the real services.

Accounts (vendor admin, two MSPs, three tenants and their admins) are made
once and reused. Their passwords are generated on first use and kept in
``.data/demo/credentials.json``. Every run adds a fresh batch of Product IDs
from a manufacturing CSV that carries the quirks a factory file really has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth import get_user_model
from django.db import transaction
from django_tenants.utils import schema_context

from audit.services import Actor
from config import embedded
from msp.models import MSP, TenantRegistration
from msp.services import accounts, products, registrations
from onboarding.models import EdgeController, OnboardRequest
from onboarding.services import approve_onboard_request
from pki.models import IssuedCertificate
from pki.services import ensure_root_ca
from provisioning.services.access_keys import create_access_key
from provisioning.services.importing import ImportReport, import_products
from tenants.models import Tenant
from tenants.services import (
    create_hosted_tenant,
    create_tenant_admin,
    ensure_public_tenant,
    management_url_for,
    rotate_tenant_access_key,
)

VENDOR = Actor.system("demo-seed")
DEMO_MSPS = [("northwind", "Northwind Networks"), ("contoso", "Contoso Managed Services")]
# (schema, MSP slug, tags given on approval)
DEMO_TENANTS = [("acme", "northwind", ["retail", "east"]), ("globex", "northwind", ["factory"]),
                ("initech", "contoso", ["office"])]
MODELS = ["EC100", "EC200"]


def demo_dir() -> Path:
    folder = embedded.data_dir() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _credentials() -> dict[str, str]:
    """Return the demo passwords, one per account, generating any that are missing."""
    path = demo_dir() / "credentials.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    wanted = ["vendor"] + [f"msp:{slug}" for slug, _name in DEMO_MSPS] + [
        f"tenant:{schema}" for schema, _msp, _tags in DEMO_TENANTS
    ]
    missing = [name for name in wanted if name not in values]
    if missing:
        values.update({name: secrets.token_urlsafe(12) for name in missing})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle, indent=2)
    return values


@dataclass
class DemoAccounts:
    passwords: dict[str, str]
    msp_tokens: dict[str, str] = field(default_factory=dict)
    provisioning_key: str = ""


def _set_password(user_model, username: str, password: str, **extra):
    user, _ = user_model.objects.get_or_create(username=username, defaults=extra)
    for name, value in extra.items():
        setattr(user, name, value)
    user.set_password(password)
    user.save()
    return user


def ensure_demo_accounts() -> DemoAccounts:
    """Create the demo accounts if missing and hand out this run's keys and tokens."""
    passwords = _credentials()
    result = DemoAccounts(passwords)
    user_model = get_user_model()
    ensure_public_tenant()
    ensure_root_ca()
    _set_password(user_model, "vendor", passwords["vendor"], is_staff=True, is_superuser=True)

    for slug, name in DEMO_MSPS:
        msp = MSP.objects.filter(slug=slug).first() or accounts.create_msp(name, slug=slug, actor=VENDOR)
        username = f"{slug}-admin"
        if not user_model.objects.filter(username=username).exists():
            accounts.add_msp_user(msp, username, actor=VENDOR, password=passwords[f"msp:{slug}"])
        else:
            _set_password(user_model, username, passwords[f"msp:{slug}"])
        _token, result.msp_tokens[slug] = accounts.create_api_token(msp, "demo run", actor=VENDOR)

    for schema, msp_slug, _tags in DEMO_TENANTS:
        msp = MSP.objects.get(slug=msp_slug)
        domain = f"{schema}.localhost"
        url = management_url_for(domain)
        tenant = Tenant.objects.filter(schema_name=schema).first()
        if tenant is None:
            tenant, access_key = create_hosted_tenant(name=schema.title(), schema_name=schema, domain=domain,
                                                      actor=VENDOR, owner_msp=msp)
            create_tenant_admin(tenant, "admin", passwords[f"tenant:{schema}"], actor=VENDOR)
        else:
            # Keys are shown once, so each run gives the tenant a new one.
            access_key = rotate_tenant_access_key(tenant, actor=VENDOR)
            with schema_context(schema):
                _set_password(user_model, "admin", passwords[f"tenant:{schema}"], is_staff=True)
        registration = TenantRegistration.objects.filter(management_url=url).first()
        if registration is None:
            registrations.register_tenant(msp, name=schema.title(), management_url=url, access_key=access_key,
                                          actor=VENDOR)
        else:
            registrations.update_tenant_access_key(registration, access_key, actor=VENDOR)

    _key, result.provisioning_key = create_access_key("demo firmware", actor=VENDOR)
    return result


def device_credential(index: int) -> tuple[dict[str, str], str, str]:
    """Make the per-device credential of the demo's EC number ``index``.

    Returns what the EC keeps in its device.json, and the CSV's
    ``public_key`` and ``secret_sha256`` cells (one of them empty): even ECs
    get a P-256 key pair, odd ones a random secret.
    """
    if index % 2 == 0:
        key = ec.generate_private_key(ec.SECP256R1())
        private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"type": "public_key", "private_key_pem": private_pem}, base64.b64encode(public_der).decode(), ""
    secret = secrets.token_urlsafe(24)
    return {"type": "secret", "secret": secret}, "", hashlib.sha256(secret.encode()).hexdigest()


def write_manufacturing_csv(path: Path, count: int) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Write a factory CSV with ``count`` new Product IDs and typical quirks; return the IDs and credentials.

    Every product gets a per-device credential (:func:`device_credential`),
    so the demo's ECs prove possession at lookup. Quirks: UTF-8 byte order
    mark, CRLF line ends, ';' delimiter, a header with the Product ID in the
    second column, blank lines, surrounding spaces, braces and upper-case
    UUIDs, one duplicate in another case and two malformed rows.
    """
    product_ids = [f"{MODELS[index % len(MODELS)]}:{uuid.uuid4()}" for index in range(count)]
    credentials: dict[str, dict[str, str]] = {}
    lines = ["line;product_id;serial;public_key;secret_sha256"]
    for index, product_id in enumerate(product_ids):
        model, _, unit = product_id.partition(":")
        if index % 4 == 1:
            shown = f"  {model.lower()}:{{{unit.upper()}}} "
        elif index % 4 == 2:
            shown = f"{model}:{unit.upper()}"
        else:
            shown = product_id
        credentials[product_id], public_key, secret_hash = device_credential(index)
        lines.append(f"{index + 1};{shown};SN{index:06d};{public_key};{secret_hash}")
        if index % 7 == 3:
            lines.append("")
    if product_ids:
        model, _, unit = product_ids[0].partition(":")
        lines.append(f"dup;{model}:{unit.upper()};SN-DUP")
    lines.append("bad;EC100-missing-colon;SN-BAD1")
    lines.append("bad;EC100:not-a-uuid;SN-BAD2")
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    return product_ids, credentials


@dataclass
class DemoBatch:
    product_ids: list[str]
    csv_path: Path
    import_report: ImportReport
    tenant_of: dict[str, str]
    # Product ID to the credential its EC keeps (see device_credential).
    credentials: dict[str, dict[str, str]]


def import_and_claim(count: int) -> DemoBatch:
    """Import a new batch from the factory CSV, allocate it to the MSPs and let them claim it."""
    csv_path = demo_dir() / "manufacturing.csv"
    product_ids, credentials = write_manufacturing_csv(csv_path, count)
    with open(csv_path, "rb") as stream:
        report = import_products(stream, actor=VENDOR, source_name=csv_path.name)

    tenant_of = {product_id: DEMO_TENANTS[index % len(DEMO_TENANTS)][0] for index, product_id in
                 enumerate(product_ids)}
    msp_of_tenant = {schema: msp for schema, msp, _tags in DEMO_TENANTS}
    for slug, _name in DEMO_MSPS:
        msp = MSP.objects.get(slug=slug)
        owned = [pid for pid in product_ids if msp_of_tenant[tenant_of[pid]] == slug]
        products.allocate_products(msp, products.numbered(owned), actor=VENDOR)
        products.claim_products(msp, products.numbered(owned), actor=Actor.system(f"demo:{slug}"))
    return DemoBatch(product_ids, csv_path, report, tenant_of, credentials)


def map_batch(batch: DemoBatch) -> None:
    """Map every product of the batch to its tenant, as each MSP would."""
    for schema, msp_slug, _tags in DEMO_TENANTS:
        msp = MSP.objects.get(slug=msp_slug)
        registration = TenantRegistration.objects.get(management_url=management_url_for(f"{schema}.localhost"))
        mine = [pid for pid in batch.product_ids if batch.tenant_of[pid] == schema]
        products.map_products_to_tenant(msp, registration, products.numbered(mine),
                                        actor=Actor.system(f"demo:{msp_slug}"))


def approve_pending(product_ids: set[str]) -> int:
    """Approve the pending requests of the batch in every demo tenant, as its admin would."""
    approved = 0
    for schema, _msp, tags in DEMO_TENANTS:
        with schema_context(schema):
            admin = get_user_model().objects.get(username="admin")
            actor = Actor.for_user(admin, "127.0.0.1")
            pending = OnboardRequest.objects.filter(status=OnboardRequest.Status.PENDING,
                                                    product_id__in=product_ids)
            for onboard_request in pending:
                with transaction.atomic():
                    approve_onboard_request(onboard_request, actor=actor, tags=tags)
                approved += 1
    return approved


@dataclass
class EcRow:
    product_id: str
    tenant: str
    state: str
    certificate_serial: str
    online: bool


def fleet_rows(batch: DemoBatch) -> list[EcRow]:
    """Read each EC of the batch back from its tenant's records."""
    rows = []
    for schema, _msp, _tags in DEMO_TENANTS:
        mine = [pid for pid in batch.product_ids if batch.tenant_of[pid] == schema]
        with schema_context(schema):
            controllers = {ec.product_id: ec for ec in EdgeController.objects.filter(product_id__in=mine)}
            serials = dict(IssuedCertificate.objects.filter(product_id__in=mine, revoked_at__isnull=True)
                           .values_list("product_id", "serial_hex"))
        for product_id in mine:
            controller = controllers.get(product_id)
            rows.append(EcRow(product_id, schema, controller.state if controller else "not seen",
                              serials.get(product_id, ""), bool(controller and controller.online)))
    return rows


def count_proven_requests(batch: DemoBatch) -> int:
    """Count the ECs of the batch with an onboard request backed by their device credential."""
    proven = 0
    for schema, _msp, _tags in DEMO_TENANTS:
        mine = [pid for pid in batch.product_ids if batch.tenant_of[pid] == schema]
        with schema_context(schema):
            proven += (OnboardRequest.objects.filter(product_id__in=mine,
                                                     device_proof=OnboardRequest.DeviceProof.VERIFIED)
                       .values("product_id").distinct().count())
    return proven


def read_csv_report(batch: DemoBatch) -> str:
    lines = [f"  line {row.line}: {row.value!r} rejected: {row.reason}" for row in batch.import_report.rejected]
    return "\n".join([batch.import_report.summary(), *lines])

