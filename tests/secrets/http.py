"""A small HTTP client for the live stack: one host name, its cookies, CSRF tokens and sign-in forms."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

CSRF_FIELD_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)


@dataclass
class HostClient:
    """Talks to 127.0.0.1:``port`` as host ``host``; keeps the cookies the server sets."""

    host: str
    port: int
    # Session ids and credentials: hidden from repr, so tracebacks do not print them.
    cookies: dict[str, str] = field(default_factory=dict, repr=False)
    authorization: str | None = field(default=None, repr=False)
    # Every (name, value) the server set, in order, for the checks of what cookies carry.
    set_cookie_log: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def with_basic(self, username: str, password: str) -> HostClient:
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        return HostClient(self.host, self.port, authorization=f"Basic {credentials}")

    def with_bearer(self, token: str) -> HostClient:
        return HostClient(self.host, self.port, authorization=f"Bearer {token}")

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                follow: bool = True, timeout: float = 60) -> Response:
        headers = {"Host": f"{self.host}:{self.port}"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.authorization:
            headers["Authorization"] = self.authorization
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if method != "GET" and "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
            headers["Referer"] = f"http://{self.host}:{self.port}/"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                         headers=headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=timeout) as raw:
                response = Response(raw.status, dict(raw.headers), raw.read())
                set_cookies = raw.headers.get_all("Set-Cookie") or []
        except urllib.error.HTTPError as error:
            response = Response(error.code, dict(error.headers), error.read())
            set_cookies = error.headers.get_all("Set-Cookie") or []
        for header in set_cookies:
            for name, morsel in SimpleCookie(header).items():
                self.set_cookie_log.append((name, morsel.value))
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if follow and response.status in (301, 302, 303) and "Location" in response.headers:
            location = urlsplit(response.headers["Location"])
            target = location.path + (f"?{location.query}" if location.query else "")
            return self.request("GET", target, follow=True, timeout=timeout)
        return response

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post_json(self, path: str, data) -> Response:
        return self.request("POST", path, body=json.dumps(data).encode(), content_type="application/json")

    def post_form(self, path: str, fields: dict, *, follow: bool = True, form_page: str | None = None) -> Response:
        """POST a form as a browser would, with the CSRF token of the page that shows it (default ``path``)."""
        page = self.get(form_page or path)
        match = CSRF_FIELD_RE.search(page.text)
        fields = {**fields, "csrfmiddlewaretoken": match.group(1)} if match else fields
        return self.request("POST", path, body=urlencode(fields, doseq=True).encode(),
                            content_type="application/x-www-form-urlencoded", follow=follow)

    def sign_in(self, login_path: str, username: str, password: str) -> Response:
        """Sign in through a Django login form; raise AssertionError when no session results."""
        response = self.post_form(login_path, {"username": username, "password": password}, follow=False)
        assert "sessionid" in self.cookies, f"signing in as {username} at {self.host}{login_path} failed: " \
                                            f"HTTP {response.status}"
        return response
