"""Container health probes, run as ``python -m ops.probe``; exit status 0 means healthy.

Standard library only, without Django, so a probe starts in a fraction of a
second and works while the database is down:

* ``http URL [--host NAME]``: GET ``URL`` and expect a 2xx status. ``--host``
  sets the Host header, so the request reaches a public host name.
* ``tls HOST PORT``: complete a TLS handshake (the tunnel gateway, the EST
  HTTPS server). The probe sends no client certificate; with TLS 1.3 the
  handshake completes before the server checks it.
* ``file PATH --max-age SECONDS``: a file whose name starts with ``PATH`` was
  written within ``SECONDS`` (Celery beat's schedule file, which beat
  rewrites every few minutes).
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request


def probe_http(url: str, host: str | None, timeout: float) -> str | None:
    if not url.startswith(("http://", "https://")):
        return f"{url} is not an http:// or https:// URL"
    request = urllib.request.Request(url, headers={"Host": host} if host else {})  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            response.read()
    except urllib.error.HTTPError as error:
        return f"{url} returned {error.code}: {error.read(500).decode(errors='replace')}"
    except (OSError, ValueError) as error:
        return f"{url} failed: {error}"
    return None


def probe_tls(host: str, port: int, timeout: float) -> str | None:
    context = ssl.create_default_context()
    # The probe checks that the server completes a handshake, not who it is.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            pass
    except (OSError, ssl.SSLError) as error:
        return f"TLS handshake with {host}:{port} failed: {error}"
    return None


def probe_file(path: str, max_age: float) -> str | None:
    # dbm back ends may add a suffix (.db, .dat) to the name they were given.
    paths = glob.glob(glob.escape(path) + "*")
    if not paths:
        return f"{path} does not exist"
    age = time.time() - max(os.path.getmtime(found) for found in paths)
    if age > max_age:
        return f"{path} was last written {age:.0f} s ago, more than {max_age:.0f} s"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before the probe fails")
    kinds = parser.add_subparsers(dest="kind", required=True)
    http = kinds.add_parser("http", help="GET a URL and expect a 2xx status")
    http.add_argument("url")
    http.add_argument("--host", help="Host header to send")
    tls = kinds.add_parser("tls", help="complete a TLS handshake")
    tls.add_argument("host")
    tls.add_argument("port", type=int)
    file = kinds.add_parser("file", help="check that a file was written recently")
    file.add_argument("path")
    file.add_argument("--max-age", type=float, required=True, help="seconds")
    args = parser.parse_args(argv)

    if args.kind == "http":
        failure = probe_http(args.url, args.host, args.timeout)
    elif args.kind == "tls":
        failure = probe_tls(args.host, args.port, args.timeout)
    else:
        failure = probe_file(args.path, args.max_age)
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
