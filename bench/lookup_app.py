"""ASGI application for bench/ztp_lookup.py: the project's application plus a baseline lookup endpoint.

``POST /bench/lookup`` runs the product query of the ZTP lookup (the same
ORM query as ``provisioning.services.lookup.lookup_product``) and returns the
same JSON shape and values as ``POST /api/v1/ztp/lookup``. It skips
everything else: the Django middleware, the access key check, the
throttles, the last-seen update and the lookup history. Every other request
goes to ``config.asgi.application`` unchanged. Only the benchmark serves it.
"""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async

from config.asgi import application as project_application

BASELINE_PATH = "/bench/lookup"


def _lookup(product_id: str) -> tuple[int, dict]:
    from common import tokens
    from provisioning.models import Product

    product = Product.objects.select_related("tenant_registration").filter(product_id=product_id).first()
    if product is None or product.tenant_registration is None:
        return 404, {"code": "unknown_product", "detail": f"Product ID {product_id} is not mapped."}
    registration = product.tenant_registration
    return 200, {
        "product_id": product.product_id,
        "director_url": registration.management_url,
        "access_key": tokens.decrypt(registration.access_key_encrypted).decode(),
    }


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send_json(send, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def baseline_lookup(receive, send) -> None:
    try:
        product_id = str(json.loads(await _read_body(receive))["product_id"])
    except (ValueError, KeyError, TypeError):
        await _send_json(send, 400, {"code": "invalid_body", "detail": "Send {\"product_id\": ...} as JSON."})
        return
    # Threads of the default executor keep their own persistent database connection (CONN_MAX_AGE).
    status, payload = await sync_to_async(_lookup, thread_sensitive=False)(product_id)
    await _send_json(send, status, payload)


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == BASELINE_PATH:
        await baseline_lookup(receive, send)
        return
    await project_application(scope, receive, send)
