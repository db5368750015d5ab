"""The whole flow on the DEBUG stack, through the same surfaces people and devices use.

Vendor staff create a provisioning access key in the admin, create an MSP
with the vendor API and import products with per-device credentials (a
public key, a secret's SHA-256). The MSP creates API tokens, claims,
creates a hosted tenant and maps. Two simulated ECs prove their credential
at lookup, onboard, get their certificate, open their tunnel and renew over
it. Then the MSP rotates its token and the tenant access key, resets its
password through the emailed link, and creates a tenant as a background
job. The issuing CA and the data key are rotated, an EC enrolls once more
over EST on the HTTPS server, and wrong credentials are sent to each
surface. Every secret on the way is registered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import re
import secrets
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django_tenants.utils import schema_context

from ec_client.agent import AgentOptions, run_agent
from ec_client.state import write_device
from tests.conftest import ADMIN_PASSWORD
from tests.factories import make_csr, make_key, new_product_id
from tests.secrets.scanning import SecretRegistry
from tests.secrets.stack import FlowRecord, SecretsStack

ACCESS_KEY_RE = r"ztsp_pk_[0-9a-f]{12}_[A-Za-z0-9_-]+"


def _expect(response, status: int, what: str):
    assert response.status == status, f"{what}: HTTP {response.status}"
    return response


def _register_session(registry: SecretRegistry, client, kind: str) -> None:
    registry.add_text(kind, client.cookies["sessionid"])


def _create_access_key_in_admin(admin) -> str:
    page = admin.post_form("/admin/provisioning/provisioningaccesskey/add/",
                           {"name": "secrets flow", "allowed_models": "", "expires_at_0": "", "expires_at_1": "",
                            "_save": "Save"})
    match = re.search(ACCESS_KEY_RE, page.text)
    assert match, f"the admin showed no new access key: HTTP {page.status}"
    return match.group(0)


def _write_manufacturing_csv(path: Path, product_ids: list[str], registry: SecretRegistry) -> list[dict]:
    """Write a factory CSV: the first product with a device public key, the second with a secret's SHA-256.

    Returns the credential each EC keeps in its device.json, in the order of ``product_ids``.
    """
    device_key = make_key()
    private_pem = device_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
    public_pem = device_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    device_secret = secrets.token_urlsafe(32)
    secret_sha256 = hashlib.sha256(device_secret.encode()).hexdigest()
    registry.add_private_key("device credential private key", device_key)
    registry.add_text("device secret", device_secret)
    # The lookup's HMAC proof is keyed with this hash, so it is as secret as the device secret.
    registry.add_text("device secret SHA-256", secret_sha256)
    rows = ["product_id,serial,public_key,secret_sha256",
            f'{product_ids[0]},SN-{product_ids[0][-6:]},"{public_pem}",',
            f"{product_ids[1]},SN-{product_ids[1][-6:]},,{secret_sha256}"]
    path.write_text("\n".join(rows) + "\n")
    return [{"type": "public_key", "private_key_pem": private_pem}, {"type": "secret", "secret": device_secret}]


class _StateWatcher:
    """Reads the EC's key file and state while the agent runs, so secrets it replaces or forgets are registered.

    The agent replaces its key at renewal and drops its lookup proof token
    once onboarded; both are secrets that the logs must not show.
    """

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.keys: set[bytes] = set()
        self.lookup_proofs: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        key_file, state_file = self.state_dir / "key.pem", self.state_dir / "state.json"
        if key_file.exists():
            data = key_file.read_bytes()
            if b"END" in data:
                self.keys.add(data)
        try:
            proof = json.loads(state_file.read_text()).get("lookup_proof")
        except (OSError, ValueError):
            proof = None
        if proof:
            self.lookup_proofs.add(proof)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._read()
            time.sleep(0.05)

    def stop(self) -> _StateWatcher:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()
        return self


def _create_tenant_in_background(portal, run: str, registry: SecretRegistry) -> str:
    """Create a second hosted tenant as a Celery job from the portal and reveal its access key once."""
    password = secrets.token_urlsafe(18)
    registry.add_text("tenant admin password", password)
    job_page = portal.post_form("/portal/tenants/hosted/", {
        "hosted-name": f"Background {run}", "hosted-schema_name": f"bg{run}", "hosted-domain": f"bg{run}.localhost",
        "hosted-admin_username": f"bg-admin-{run}", "hosted-admin_password": password, "background": "1",
    }, form_page="/portal/tenants/")
    match = re.search(r"/portal/tenants/jobs/([0-9a-f-]{36})/", job_page.text)
    assert match, f"no tenant creation job page: HTTP {job_page.status}"
    job_id = match.group(1)
    deadline = time.monotonic() + 60
    while True:
        status = _expect(portal.get(f"/portal/tenants/jobs/{job_id}/status/"), 200, "job status").json()
        if status["finished"]:
            break
        assert time.monotonic() < deadline, f"tenant creation job stuck at {status['step']}"
        time.sleep(0.3)
    assert status["state"] == "succeeded", f"tenant creation job failed: {status['error']}"
    shown = portal.post_form(f"/portal/tenants/jobs/{job_id}/access-key/", {},
                             form_page=f"/portal/tenants/jobs/{job_id}/")
    key = re.search(r"ztsp_tk_[0-9a-f]{12}_[A-Za-z0-9_-]+", shown.text)
    assert key, f"the job page showed no access key: HTTP {shown.status}"
    registry.add_text("tenant access key", key.group(0))
    return job_id


def _present_rejected_credentials(stack: SecretsStack, domain: str, product_id: str, revoked_token: str,
                                  request_id: str, registry: SecretRegistry) -> None:
    """Send wrong, revoked and mistyped credentials to each surface; each is rejected and must not be logged.

    A rejected key is often a real key with a typo, or another deployment's key.
    """
    wrong_key = f"ztsp_pk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    wrong_tenant_key = f"ztsp_tk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    wrong_poll_token = f"ztsp_poll_{secrets.token_hex(32)}"
    wrong_password = secrets.token_urlsafe(18)
    wrong_metrics_token = secrets.token_urlsafe(32)
    for kind, value in (("rejected provisioning access key", wrong_key), ("rejected tenant access key",
                        wrong_tenant_key), ("rejected poll token", wrong_poll_token),
                        ("rejected password", wrong_password), ("MSP API token", revoked_token),
                        ("rejected metrics token", wrong_metrics_token)):
        registry.add_text(kind, value)

    lookup = stack.client().with_bearer(wrong_key).post_json("/api/v1/ztp/lookup", {"product_id": product_id})
    _expect(lookup, 401, "lookup with a wrong key")
    _expect(stack.client().with_bearer(revoked_token).get("/api/v1/msp/products"), 401, "revoked MSP token")
    csr_pem, key = make_csr(product_id)
    registry.add_private_key("EC private key", key)
    onboard = stack.client(domain).with_bearer(wrong_tenant_key).post_json(
        "/api/v1/onboard", {"product_id": product_id, "csr": csr_pem, "facts": {}})
    _expect(onboard, 401, "onboard with a wrong tenant key")
    _expect(stack.client(domain).with_bearer(wrong_poll_token).get(f"/api/v1/onboard/{request_id}?wait=0"), 401,
            "poll with a wrong token")
    _expect(stack.client().with_basic("vendor-admin", wrong_password).get("/api/v1/vendor/msps"), 401,
            "vendor API with a wrong password")
    _expect(stack.client().with_bearer(wrong_metrics_token).get("/metrics"), 401, "metrics with a wrong token")
    failed_login = stack.client().post_form("/admin/login/?next=/admin/",
                                            {"username": "vendor-admin", "password": wrong_password}, follow=False)
    _expect(failed_login, 200, "admin sign-in with a wrong password")


def _reset_password(stack: SecretsStack, email: str, registry: SecretRegistry) -> str:
    """Reset an MSP user's password through the portal and its emailed link; return the new password."""
    from tests.secrets.mailbox import MAILBOX_VARIABLE

    browser = stack.client()
    _expect(browser.post_form("/portal/password-reset/", {"email": email}), 200, "password reset request")
    mailbox = Path(stack.env[MAILBOX_VARIABLE])
    sent = [json.loads(line) for line in mailbox.read_text().splitlines() if email in line]
    assert sent, "no password reset email was sent"
    link = re.search(r"/portal/password-reset/([^/\s]+)/([^/\s]+)/", sent[-1]["body"])
    assert link, "the password reset email has no link"
    uid, token = link.groups()
    registry.add_text("password reset token", token)

    # The link stores the token in the session and redirects to the form, so the form's URL has no token.
    _expect(browser.get(link.group(0)), 200, "password reset link")
    new_password = secrets.token_urlsafe(18)
    registry.add_text("MSP user password", new_password)
    done = browser.post_form(f"/portal/password-reset/{uid}/set-password/",
                             {"new_password1": new_password, "new_password2": new_password})
    _expect(done, 200, "set the new password")
    return new_password


def _approve_when_pending(director, product_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = _expect(director.get("/api/v1/director/onboard-requests?status=pending"), 200, "pending list")
        for item in pending.json()["results"]:
            if item["product_id"] == product_id:
                _expect(director.post_json(f"/api/v1/director/onboard-requests/{item['request_id']}/approve",
                                           {"tags": ["secrets"]}), 200, "approve")
                return
        time.sleep(0.2)
    raise AssertionError(f"{product_id} never appeared in the pending list")


def _run_ec(stack: SecretsStack, state_dir: Path, product_id: str, provisioning_key: str, director,
            credential: dict) -> dict:
    write_device(state_dir, product_id, f"http://localhost:{stack.web_port}", provisioning_key, {"model": "EC100"},
                 credential=credential)
    options = AgentOptions(resolve=(f"*.localhost:{stack.web_port}:127.0.0.1",
                                    f"localhost:{stack.tunnel_port}:127.0.0.1"),
                           backoff_max=2, wait_seconds=20, deadline_seconds=90, exit_when_connected=True,
                           hold_seconds=6, renew_fraction=1.0, renew_check_seconds=5, verbose=True)
    outcome: dict = {}

    def target():
        outcome["result"] = asyncio.run(run_agent(state_dir, options))

    watcher = _StateWatcher(state_dir)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    _approve_when_pending(director, product_id)
    thread.join(timeout=120)
    seen = watcher.stop()
    outcome["keys"], outcome["lookup_proofs"] = seen.keys, seen.lookup_proofs
    return outcome


def _est_enroll(stack: SecretsStack, domain: str, product_id: str, tenant_key: str, registry: SecretRegistry):
    """Send an EST simpleenroll over the HTTPS server with the tenant access key as the Basic password."""
    from pki.services import root_ca_material

    _signer, root_certificate = root_ca_material()
    context = ssl.create_default_context(cadata=root_certificate.public_bytes(serialization.Encoding.PEM).decode())
    context.check_hostname = False
    csr_pem, key = make_csr(product_id)
    registry.add_private_key("EC private key", key)
    csr_der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    credentials = base64.b64encode(f"{product_id}:{tenant_key}".encode()).decode()
    registry.add_text("EST Basic credentials", credentials)
    connection = http.client.HTTPSConnection("127.0.0.1", stack.https_port, context=context, timeout=30)
    try:
        connection.request("POST", "/.well-known/est/simpleenroll", body=base64.encodebytes(csr_der),
                           headers={"Host": f"{domain}:{stack.https_port}", "Content-Type": "application/pkcs10",
                                    "Authorization": f"Basic {credentials}"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status in (200, 202), f"EST simpleenroll: HTTP {response.status}"


def _register_ca_keys(registry: SecretRegistry, schema_name: str) -> None:
    from common import tokens
    from pki.models import IssuingCA
    from tenants.models import DeploymentRootCA

    for ca in DeploymentRootCA.objects.all():
        registry.add_pem_private_key("root CA private key", tokens.decrypt(ca.private_key_encrypted))
    with schema_context(schema_name):
        cas = list(IssuingCA.objects.all())
    assert len(cas) >= 2, "the issuing CA rotation left fewer than two CAs"
    for ca in cas:
        registry.add_pem_private_key("issuing CA private key", tokens.decrypt(ca.private_key_encrypted))


def _register_poll_tokens(registry: SecretRegistry, schema_name: str, product_id: str) -> int:
    from onboarding.models import OnboardRequest
    from onboarding.services import poll_token_for

    with schema_context(schema_name):
        requests = list(OnboardRequest.objects.filter(edge_controller__product_id=product_id))
        for onboard_request in requests:
            registry.add_text("poll token", poll_token_for(onboard_request))
    return len(requests)


def _assert_device_proofs_verified(schema_name: str, product_ids: list[str]) -> None:
    from onboarding.models import OnboardRequest

    with schema_context(schema_name):
        for product_id in product_ids:
            proofs = set(OnboardRequest.objects.filter(edge_controller__product_id=product_id)
                         .values_list("device_proof", flat=True))
            assert proofs == {OnboardRequest.DeviceProof.VERIFIED}, f"{product_id}: device proof {proofs}"


def _first_request_id(schema_name: str, product_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(schema_name):
        return str(OnboardRequest.objects.filter(edge_controller__product_id=product_id).earliest("created_at").pk)


def _record_in_process_tasks(task_log: Path):
    from celery.signals import before_task_publish

    def record(sender=None, body=None, headers=None, **_kwargs):
        headers = headers or {}
        with open(task_log, "a") as handle:
            handle.write(json.dumps({"task": sender, "pid": "pytest", "body": body,
                                     "argsrepr": headers.get("argsrepr"),
                                     "kwargsrepr": headers.get("kwargsrepr")}, default=repr) + "\n")

    before_task_publish.connect(record, weak=False)
    return lambda: before_task_publish.disconnect(record)


def run_flow(stack: SecretsStack, world, work_dir: Path, pytest_log: Path) -> FlowRecord:
    from msp.models import MSP, MSPApiToken
    from msp.services.accounts import add_msp_user
    from tests.factories import VENDOR

    registry = SecretRegistry()
    stop_recording = _record_in_process_tasks(stack.task_log)
    run = secrets.token_hex(4)
    registry.add_text("DJANGO_SECRET_KEY", settings.SECRET_KEY)
    registry.add_text("metrics token", stack.metrics_token)
    registry.add_text("ZTSP_HASH_KEY", settings.ZTSP_HASH_KEY)
    for data_key in settings.ZTSP_DATA_KEYS:
        registry.add_text("data key", data_key)
        registry.add_bytes("data key (raw)", base64.urlsafe_b64decode(data_key))
    # The world's own keys are used by other tests in the same run; they must not leak either.
    registry.add_text("provisioning access key", world.provisioning_key)
    registry.add_text("vendor admin password", ADMIN_PASSWORD)
    registry.add_text("vendor Basic credentials", base64.b64encode(f"vendor-admin:{ADMIN_PASSWORD}".encode()).decode())

    # Vendor staff: a provisioning access key in the admin, an MSP over the vendor API, the factory import.
    admin = stack.client()
    admin.sign_in("/admin/login/?next=/admin/", "vendor-admin", ADMIN_PASSWORD)
    _register_session(registry, admin, "vendor admin session id")
    provisioning_key = _create_access_key_in_admin(admin)
    registry.add_text("provisioning access key", provisioning_key)

    vendor = stack.client().with_basic("vendor-admin", ADMIN_PASSWORD)
    msp_slug = f"secrets-{run}"
    _expect(vendor.post_json("/api/v1/vendor/msps", {"name": f"Secrets {run}", "slug": msp_slug}), 201, "create MSP")
    msp_password = secrets.token_urlsafe(18)
    msp_username = f"secrets-user-{run}"
    registry.add_text("MSP user password", msp_password)
    registry.add_text("MSP Basic credentials",
                      base64.b64encode(f"{msp_username}:{msp_password}".encode()).decode())
    msp_email = f"{msp_username}@example.com"
    add_msp_user(MSP.objects.get(slug=msp_slug), msp_username, actor=VENDOR, password=msp_password, email=msp_email)

    product_ids = [new_product_id(), new_product_id()]
    csv_file = work_dir / "factory.csv"
    device_credentials = _write_manufacturing_csv(csv_file, product_ids, registry)
    stack.run_command("import_products", ["import_products", str(csv_file), "--allocate-to", msp_slug])

    # The MSP: API tokens, claim, a hosted tenant with its admin, mapping.
    msp_basic = stack.client().with_basic(msp_username, msp_password)
    first_token = _expect(msp_basic.post_json("/api/v1/msp/tokens", {"name": "first"}), 201, "token").json()["token"]
    registry.add_text("MSP API token", first_token)
    msp_api = stack.client().with_bearer(first_token)
    _expect(msp_api.post_json("/api/v1/msp/products/claim", {"product_ids": product_ids}), 200, "claim")
    schema_name = f"sec{run}"
    domain = f"{schema_name}.localhost"
    tenant_admin_password = secrets.token_urlsafe(18)
    registry.add_text("tenant admin password", tenant_admin_password)
    registry.add_text("tenant admin Basic credentials",
                      base64.b64encode(f"admin-{run}:{tenant_admin_password}".encode()).decode())
    created = _expect(msp_api.post_json("/api/v1/msp/hosted-tenants", {
        "name": f"Secrets {run}", "schema_name": schema_name, "domain": domain, "register": True,
        "admin_username": f"admin-{run}", "admin_password": tenant_admin_password,
    }), 201, "create hosted tenant").json()
    registry.add_text("tenant access key", created["access_key"])
    registration_id = created["tenant_registration"]
    _expect(msp_api.post_json("/api/v1/msp/products/map",
                              {"tenant_registration": registration_id, "product_ids": product_ids}), 200, "map")

    # The EC: lookup, onboard, certificate, tunnel, renewal over the tunnel.
    tenant_admin = stack.client(domain).with_basic(f"admin-{run}", tenant_admin_password)
    # Both ECs prove their device credential at lookup: a key pair, then a secret.
    for index, (product_id, credential) in enumerate(zip(product_ids, device_credentials, strict=True)):
        outcome = _run_ec(stack, work_dir / f"ec{index}", product_id, provisioning_key, tenant_admin, credential)
        result = outcome["result"]
        assert result.phase == "tunnel_up", f"EC {index} stopped at {result.phase}: {result.error}"
        assert len(outcome["keys"]) >= 2, f"EC {index} did not renew with a new key"
        for key_pem in outcome["keys"]:
            registry.add_pem_private_key("EC private key", key_pem)
        assert outcome["lookup_proofs"], f"EC {index} kept no lookup proof token"
        for token in outcome["lookup_proofs"]:
            registry.add_text("lookup proof token", token)
        assert _register_poll_tokens(registry, schema_name, product_id) >= 1
    _assert_device_proofs_verified(schema_name, product_ids)

    # Rotations: the tenant access key and the MSP token, then the issuing CA and the data key.
    second_token = _expect(msp_basic.post_json("/api/v1/msp/tokens", {"name": "second"}), 201,
                           "token").json()["token"]
    registry.add_text("MSP API token", second_token)
    msp_api = stack.client().with_bearer(second_token)
    rotated = _expect(msp_api.post_json(f"/api/v1/msp/tenant-registrations/{registration_id}/rotate", {}), 200,
                      "rotate tenant key").json()
    registry.add_text("tenant access key", rotated["access_key"])
    msp_password = _reset_password(stack, msp_email, registry)
    portal = stack.client()
    portal.sign_in("/portal/login/", msp_username, msp_password)
    _register_session(registry, portal, "MSP portal session id")
    first_token_pk = MSPApiToken.objects.get(key_id=first_token.split("_")[2]).pk
    _expect(portal.post_form(f"/portal/tokens/{first_token_pk}/revoke/", {}, form_page="/portal/tokens/"), 200,
            "revoke token")

    tenant_job_id = _create_tenant_in_background(portal, run, registry)

    stack.run_command("rotate_issuing_ca", ["rotate_issuing_ca", schema_name, "--overlap-days", "1"])
    new_data_key = Fernet.generate_key().decode()
    registry.add_text("data key", new_data_key)
    registry.add_bytes("data key (raw)", base64.urlsafe_b64decode(new_data_key))
    old_data_keys = ",".join(settings.ZTSP_DATA_KEYS)
    stack.run_command("rotate_data_keys", ["rotate_data_keys"],
                      env={"ZTSP_DATA_KEYS": f"{new_data_key},{old_data_keys}"})
    # Back under the old key, which the running processes and the rest of the test run use.
    stack.run_command("rotate_data_keys", ["rotate_data_keys"],
                      env={"ZTSP_DATA_KEYS": f"{old_data_keys},{new_data_key}"})
    _register_ca_keys(registry, schema_name)

    # The same EC enrolls once more over EST with the rotated tenant key.
    _est_enroll(stack, domain, product_ids[0], rotated["access_key"], registry)
    _register_poll_tokens(registry, schema_name, product_ids[0])

    first_request_id = _first_request_id(schema_name, product_ids[0])
    _present_rejected_credentials(stack, domain, product_ids[0], first_token, first_request_id, registry)

    director = stack.client(domain)
    director.sign_in("/accounts/login/", f"admin-{run}", tenant_admin_password)
    _register_session(registry, director, "Director session id")
    stop_recording()
    return FlowRecord(stack=stack, registry=registry, pytest_log=pytest_log, product_id=product_ids[0],
                      schema_name=schema_name, domain=domain, registration_id=registration_id, msp_slug=msp_slug,
                      msp_token=second_token, vendor_basic=vendor, tenant_admin_basic=tenant_admin,
                      admin_session=admin, portal_session=portal, director_session=director,
                      tenant_job_id=tenant_job_id, background_schema_name=f"bg{run}")

