"""Config delivery over real tunnels: an in-process gateway and raw TLS clients, with committed rows."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from tests.gateway.helpers import IssuedEc, onboard_ec

from .helpers import ADMIN_ACTOR, controller, desired, make_policy, make_tag, wait_for

pytestmark = pytest.mark.e2e


def _push(ec: IssuedEc, policy):
    from policies.jobs import run_push_job, start_push_job

    with schema_context(ec.schema_name):
        job = start_push_job(policy, actor=ADMIN_ACTOR, product_ids=[ec.product_id])
        return run_push_job(job.pk)


def _job(schema: str, job_id: int):
    from policies.models import PushJob

    with schema_context(schema):
        return PushJob.objects.get(pk=job_id)


def _applied(ec: IssuedEc) -> int:
    return controller(ec.schema_name, ec.product_id).applied_config_version


def _wait_online(ec: IssuedEc) -> None:
    assert wait_for(lambda: controller(ec.schema_name, ec.product_id).online)


def test_push_to_online_ec_is_acked(world, connect):
    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)
    _wait_online(ec)
    policy = make_policy(ec.schema_name, {"hostname": "edge-1", "ntp_servers": ["192.0.2.1"]})

    job = _push(ec, policy)
    message = tunnel.receive()
    tunnel.send({"type": "ack", "version": message["version"], "status": "applied"})

    assert message == {"type": "config", "version": 1, "body": {"hostname": "edge-1", "ntp_servers": ["192.0.2.1"]}}
    assert job.sent == 1
    assert wait_for(lambda: _applied(ec) == 1)
    assert wait_for(lambda: _job(ec.schema_name, job.pk).acked == 1)
    assert desired(ec.schema_name, ec.product_id).last_ack_status == "applied"


def test_offline_ec_catches_up_on_reconnect(world, connect):
    ec = onboard_ec(world.a)
    job = _push(ec, make_policy(ec.schema_name, {"timezone": "UTC"}))

    tunnel, hello = connect(ec)
    message = tunnel.receive()
    tunnel.send({"type": "ack", "version": message["version"], "status": "applied"})

    assert hello["type"] == "hello"
    assert job.sent == 0
    assert message == {"type": "config", "version": 1, "body": {"timezone": "UTC"}}
    assert wait_for(lambda: _applied(ec) == 1)
    assert wait_for(lambda: _job(ec.schema_name, job.pk).acked == 1)


def test_current_ec_gets_no_config_on_hello(world, connect):
    ec = onboard_ec(world.a)
    _push(ec, make_policy(ec.schema_name, {"timezone": "UTC"}))
    first, _hello = connect(ec)
    first.send({"type": "ack", "version": first.receive()["version"], "status": "applied"})
    assert wait_for(lambda: _applied(ec) == 1)
    first.close()

    second, _hello = connect(ec, hello=False)
    second.send({"type": "hello", "product_id": ec.product_id, "firmware": "raw-tls", "config_version": 1})
    second.receive()
    second.send({"type": "heartbeat", "seq": 7})

    assert second.receive() == {"type": "heartbeat", "seq": 7}


def test_failed_ack_is_recorded(world, connect):
    from audit.models import AuditEvent

    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)
    _wait_online(ec)
    job = _push(ec, make_policy(ec.schema_name, {"vlans": [{"id": 10, "name": "cameras"}]}))

    message = tunnel.receive()
    tunnel.send({"type": "ack", "version": message["version"], "status": "failed", "detail": "VLAN 10 in use"})

    assert wait_for(lambda: _job(ec.schema_name, job.pk).failed == 1)
    row = desired(ec.schema_name, ec.product_id)
    assert (row.last_ack_version, row.last_ack_status, row.last_ack_detail) == (1, "failed", "VLAN 10 in use")
    assert _applied(ec) == 0
    with schema_context(ec.schema_name):
        assert AuditEvent.objects.filter(action="config.ack_failed", object_id=ec.product_id).exists()


def test_invalid_ack_gets_error_reply(world, connect):
    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)

    tunnel.send({"type": "ack", "version": "one", "status": "applied"})

    reply = tunnel.receive()
    assert reply["type"] == "error"
    assert reply["code"] == "invalid_ack"


def test_auto_policy_reaches_ec_at_first_hello(world, connect):
    tag = make_tag(world.a.tenant.schema_name)
    make_policy(world.a.tenant.schema_name, {"syslog": {"server": "192.0.2.9", "protocol": "tls"}}, kind="auto",
                tags=[tag])
    ec = _onboard_tagged(world.a, tag)

    tunnel, _hello = connect(ec)

    assert tunnel.receive() == {"type": "config", "version": 1,
                                "body": {"syslog": {"server": "192.0.2.9", "protocol": "tls"}}}


def _onboard_tagged(persona, tag: str) -> IssuedEc:
    from onboarding.services import submit_onboard_request
    from pki.models import IssuedCertificate
    from pki.services import ca_chain_pem
    from tests.factories import make_csr, new_product_id
    from tests.onboarding.helpers import approve_and_issue

    schema = persona.tenant.schema_name
    product_id = new_product_id()
    csr_pem, key = make_csr(product_id)
    with schema_context(schema):
        submitted = submit_onboard_request(product_id, csr_pem, {}, source_address="127.0.0.1")
    approve_and_issue(schema, submitted.request.pk, tags=[tag])
    with schema_context(schema):
        certificate = IssuedCertificate.objects.select_related("issuing_ca").get(product_id=product_id)
        chain = ca_chain_pem(certificate.issuing_ca)
    return IssuedEc(schema, product_id, key, certificate.certificate_pem, chain)
