"""A small HTTP server for the metrics of processes without a web server: the Celery worker and the tunnel gateway."""

from __future__ import annotations

import json
import logging
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer

from config.api import error_body
from ops.access import check_scrape_access

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    # Scrapes every few seconds would flood the log.
    def log_message(self, format, *args):
        pass


def metrics_app(registries):
    """Return a WSGI app that serves ``registries`` at any path to the holders of the metrics token."""

    def app(environ, start_response):
        rejected = check_scrape_access(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR"))
        if rejected is not None:
            body = json.dumps(error_body(rejected.code, rejected.detail)).encode()
            headers = [("Content-Type", "application/json")]
            if rejected.status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
            start_response(f"{rejected.status} {'Unauthorized' if rejected.status == 401 else 'Forbidden'}",
                           headers)
            return [body]
        body = b"".join(generate_latest(registry) for registry in registries)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    return app


def start_metrics_server(bind: str, port: int, registries) -> threading.Thread:
    """Serve ``registries`` on ``bind``:``port`` from a daemon thread, which ends with the process."""
    server = make_server(bind, port, metrics_app(registries), ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    logger.info("Metrics server listening on %s:%d", bind, port)
    return thread
