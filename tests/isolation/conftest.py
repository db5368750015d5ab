"""Objects and signed-in personas for the isolation tests.

The objects are made once per run through the real services and committed,
like the ``world``. Each test still runs in a rolled-back transaction, so a
request that approves, revokes or deletes one of them changes nothing for the
next test.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.conftest import ADMIN_PASSWORD
from tests.factories import VENDOR, make_csr, new_product_id, provision_products

ACTOR = Actor.system("isolation-tests")
CONFIG_BODY = {"hostname": "isolation"}

# Persona ids, in the order the matrix lists them.
VENDOR_ADMIN = "vendor"
MSP_A = "msp_a"
MSP_B = "msp_b"
T1_ADMIN = "t1_admin"
T2_ADMIN = "t2_admin"
ANONYMOUS = "anonymous"
EC_T1 = "ec_t1_key"
EC_T2 = "ec_t2_key"
EC_PROVISIONING = "ec_provisioning_key"
PERSONAS = (VENDOR_ADMIN, MSP_A, MSP_B, T1_ADMIN, T2_ADMIN, ANONYMOUS, EC_T1, EC_T2, EC_PROVISIONING)


@dataclass
class TenantObjects:
    """Rows of one tenant schema that the matrix addresses by id."""

    schema: str
    pending_request_id: str
    pending_poll_token: str
    product_id: str
    controller_id: int
    policy_id: int
    push_job_id: int
    tag_id: int
    ca_key_id: str


@dataclass
class MatrixObjects:
    """Everything the matrix rows name in their URLs and bodies."""

    t1: TenantObjects
    t2: TenantObjects
    a_product_id: str
    a_registration_id: int
    a_token_id: int
    a_job_id: str
    a_spare_schema: str
    a_slug: str
    ec_product_id: str
    ec_csr: str
    sessions: dict[str, str]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _tenant_objects(persona) -> TenantObjects:
    from onboarding.models import EdgeController, Tag
    from onboarding.services import submit_onboard_request
    from pki.models import IssuingCA
    from policies.models import PushJob
    from policies.services import create_policy, set_manual_config
    from tests.onboarding.helpers import approve_and_issue

    schema = persona.tenant.schema_name
    with schema_context(schema):
        pending_product = new_product_id()
        pending = submit_onboard_request(pending_product, make_csr(pending_product)[0], {}, source_address="127.0.0.1")

        onboarded_product = new_product_id()
        submitted = submit_onboard_request(onboarded_product, make_csr(onboarded_product)[0], {},
                                           source_address="127.0.0.1")
    tag_name = f"isolation-{uuid.uuid4().hex[:8]}"
    approve_and_issue(schema, str(submitted.request.pk), tags=[tag_name])

    with schema_context(schema):
        controller = EdgeController.objects.get(product_id=onboarded_product)
        policy = create_policy(name=f"isolation-{uuid.uuid4().hex[:8]}", kind="on_demand", body=CONFIG_BODY,
                               actor=ACTOR)
        # A job row only: the push task is never queued, so no worker touches it.
        set_manual_config(controller, CONFIG_BODY, actor=ACTOR)
        job = PushJob.objects.create(policy=policy, version=policy.latest_version(), targeted=1,
                                     created_by=ACTOR.name)
        return TenantObjects(
            schema=schema,
            pending_request_id=str(pending.request.pk),
            pending_poll_token=pending.poll_token,
            product_id=onboarded_product,
            controller_id=controller.pk,
            policy_id=policy.pk,
            push_job_id=job.pk,
            tag_id=Tag.objects.get(name=tag_name).pk,
            ca_key_id=IssuingCA.objects.filter(is_active=True).values_list("key_id", flat=True).first(),
        )


def _session_cookie(user, schema: str) -> str:
    client = Client()
    with schema_context(schema):
        client.force_login(user)
    return client.cookies["sessionid"].value


def _tenant_admin(persona):
    from django.contrib.auth import get_user_model

    with schema_context(persona.tenant.schema_name):
        return get_user_model().objects.get(username=persona.tenant_admin_username)


@pytest.fixture(scope="session")
def matrix_objects(world, django_db_blocker) -> MatrixObjects:
    from common import tokens
    from msp.services.accounts import create_api_token
    from tenants.models import TenantCreationJob
    from tenants.services import create_hosted_tenant

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        [a_product_id] = provision_products(world.a.msp, world.a.registration)
        spare_token, _text = create_api_token(world.a.msp, "isolation-spare", actor=VENDOR)
        job = TenantCreationJob.objects.create(
            owner_msp=world.a.msp, actor={"type": "system", "name": "isolation-tests"}, name="Isolation job",
            schema_name="isolation_job", domain="isolation-job.localhost",
            state=TenantCreationJob.State.SUCCEEDED, step="done",
            access_key_encrypted=tokens.encrypt(b"ztsp_tak_isolation-job-key"),
        )
        spare_schema = f"iso_spare_{uuid.uuid4().hex[:6]}"
        create_hosted_tenant(name="Isolation spare", schema_name=spare_schema,
                             domain=f"{spare_schema.replace('_', '-')}.localhost", actor=VENDOR,
                             owner_msp=world.a.msp)
        t1 = _tenant_objects(world.a)
        t2 = _tenant_objects(world.b)
        connection.set_schema_to_public()
        sessions = {
            VENDOR_ADMIN: _session_cookie(world.vendor_admin, "public"),
            MSP_A: _session_cookie(world.a.msp_user, "public"),
            MSP_B: _session_cookie(world.b.msp_user, "public"),
            T1_ADMIN: _session_cookie(_tenant_admin(world.a), world.a.tenant.schema_name),
            T2_ADMIN: _session_cookie(_tenant_admin(world.b), world.b.tenant.schema_name),
        }
        connection.set_schema_to_public()
    ec_product_id = new_product_id()
    return MatrixObjects(
        t1=t1, t2=t2, a_product_id=a_product_id, a_registration_id=world.a.registration.pk,
        a_token_id=spare_token.pk, a_job_id=str(job.pk), a_spare_schema=spare_schema, a_slug=world.a.msp.slug,
        ec_product_id=ec_product_id, ec_csr=make_csr(ec_product_id)[0], sessions=sessions,
    )


def default_authorization(persona: str, world) -> str | None:
    """Return the Authorization header a persona sends when a row names no other credential."""
    return {
        VENDOR_ADMIN: _basic(world.vendor_admin.username, ADMIN_PASSWORD),
        MSP_A: f"Bearer {world.a.msp_token}",
        MSP_B: f"Bearer {world.b.msp_token}",
        T1_ADMIN: _basic(world.a.tenant_admin_username, ADMIN_PASSWORD),
        T2_ADMIN: _basic(world.b.tenant_admin_username, ADMIN_PASSWORD),
        ANONYMOUS: None,
        EC_T1: f"Bearer {world.a.tenant_access_key}",
        EC_T2: f"Bearer {world.b.tenant_access_key}",
        EC_PROVISIONING: f"Bearer {world.provisioning_key}",
    }[persona]


def est_authorization(persona: str, world, product_id: str) -> str | None:
    """Return the EST Basic header (Product ID, tenant access key) of an EC persona, else the default header."""
    keys = {EC_T1: world.a.tenant_access_key, EC_T2: world.b.tenant_access_key,
            EC_PROVISIONING: world.provisioning_key}
    if persona in keys:
        return _basic(product_id, keys[persona])
    return default_authorization(persona, world)


def poll_authorization(persona: str, world, objects: MatrixObjects) -> str | None:
    """Return the poll token that an EC persona got from its own tenant, else the default header."""
    if persona == EC_T1:
        return f"Bearer {objects.t1.pending_poll_token}"
    if persona == EC_T2:
        return f"Bearer {objects.t2.pending_poll_token}"
    return default_authorization(persona, world)


def persona_client(persona: str, host: str, objects: MatrixObjects, authorization: str | None) -> Client:
    """Return a browser of ``persona`` at ``host``: its session cookie (if any) and an Authorization header.

    The test client sends its cookies to every host, as a browser does for a
    shared parent domain, so a session of one host is also tried at the others.
    """
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    client = Client(HTTP_HOST=host, **headers)
    if persona in objects.sessions:
        client.cookies["sessionid"] = objects.sessions[persona]
    return client
