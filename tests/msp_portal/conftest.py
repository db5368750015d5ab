"""Clients and data for the MSP portal tests: signed-in MSP users and a fresh MSP per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.test import Client

from tests.conftest import ADMIN_PASSWORD
from tests.factories import VENDOR


def portal_client(user=None) -> Client:
    client = Client(HTTP_HOST="localhost")
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def client_a(world) -> Client:
    """The portal client of MSP A's user."""
    return portal_client(world.a.msp_user)


@pytest.fixture
def client_b(world) -> Client:
    """The portal client of MSP B's user."""
    return portal_client(world.b.msp_user)


@dataclass
class FreshMSP:
    msp: object
    user: object
    client: Client


@pytest.fixture
def fresh(world) -> FreshMSP:
    """A new MSP with one signed-in user and no products, so counts start at zero."""
    from msp.services.accounts import add_msp_user, create_msp

    suffix = uuid.uuid4().hex[:8]
    msp = create_msp(f"Fresh {suffix}", actor=VENDOR)
    user = add_msp_user(msp, f"fresh-{suffix}", actor=VENDOR, password=ADMIN_PASSWORD)
    return FreshMSP(msp, user, portal_client(user))


def register_external(msp, name: str | None = None):
    """Register a tenant of a Director elsewhere for ``msp`` and return the registration."""
    from msp.services.registrations import register_tenant

    suffix = uuid.uuid4().hex[:8]
    return register_tenant(msp, name=name or f"External {suffix}",
                           management_url=f"https://t-{suffix}.director.example", access_key="k" * 32,
                           actor=VENDOR)


def field_errors(response, form_name: str = "form") -> dict[str, list[str]]:
    """Return the field errors of the form named ``form_name`` in the response context."""
    return {field: list(errors) for field, errors in response.context[form_name].errors.items()}
