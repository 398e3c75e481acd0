"""The OAuth 2.0 side shared by the Google and Microsoft fakes (fake_google.py,
fake_microsoft.py): a consent page, the authorization-code grant with PKCE (S256 checked), the
refresh-token grant, revocation, and the errors the real services give (`invalid_grant`, with
Microsoft's AADSTS codes), on one loopback HTTP server that also serves the calendar API.

Real semantics kept: a code is used once, only with the redirect URI and verifier it was
issued for, and by the client it was issued to; a revoked refresh token is refused with
`invalid_grant` and its access tokens with 401; `prompt=consent`/`offline_access` decides
whether a refresh token is given."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def id_token(email: str) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'email': email, 'sub': email})}.sig"


class Reply:
    """A handler's answer."""

    def __init__(self, status: int, body: object = None, headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


class FakeOAuthServer:
    """The server; subclasses route their API (`api`) and word their token errors."""

    auth_path = "/auth"
    token_path = "/token"
    email = "owner@example.com"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, bool] = {}  # token -> still valid
        self.access_tokens: dict[str, str] = {}  # access -> refresh it came from
        self.token_requests: list[dict] = []
        self.api_requests: list[tuple[str, str]] = []
        self.throttle: list[tuple[int, str | None]] = []  # (status, Retry-After) answers to give
        self.drop_next: Callable[[str, str], bool] | None = None  # answer lost after storing
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _send(self, reply: Reply) -> None:
                if isinstance(reply.body, bytes | str):
                    raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
                    kind = "text/html; charset=utf-8"
                elif reply.body is None:
                    raw, kind = b"", "application/json"
                else:
                    raw, kind = json.dumps(reply.body).encode(), "application/json"
                self.send_response(reply.status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(raw)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                body = self._body()
                if parts.path == server.auth_path and method == "GET":
                    self._send(server.consent_page(query))
                elif parts.path == server.auth_path + "/allow" and method == "GET":
                    self._send(server.allow(query))
                elif parts.path == server.token_path and method == "POST":
                    form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
                    self._send(server.token(form, self.headers.get("authorization", "")))
                else:
                    server.api_requests.append((method, self.path))
                    reply = server.authorized(self.headers.get("authorization", ""))
                    if reply is None and server.throttle:
                        status, wait = server.throttle.pop(0)
                        reply = server.throttled(status, wait)
                    if reply is None:
                        payload = json.loads(body) if body else None
                        reply = server.api(method, parts.path, query, payload, self.headers)
                        if server.drop_next is not None and server.drop_next(method, parts.path):
                            server.drop_next = None
                            self.close_connection = True
                            self.connection.shutdown(2)  # stored, but the answer is lost
                            return
                    self._send(reply)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- OAuth -------------------------------------------------------------------------------

    def consent_page(self, query: dict) -> Reply:
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return Reply(400, "<h1>Error 400: invalid_request</h1>")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return Reply(400, "<h1>PKCE required</h1>")
        allow = f"{self.auth_path}/allow?{urlencode(query)}"
        refused = {"error": "access_denied", "state": query.get("state", "")}
        deny = f"{query['redirect_uri']}?{urlencode(refused)}"
        return Reply(
            200,
            "<!doctype html><title>Fake consent</title>"
            f"<h1>{html.escape(self.email)}: allow booking_service to use your calendar?</h1>"
            f"<p>Scopes: {html.escape(query.get('scope', ''))}</p>"
            f'<a id="allow" href="{html.escape(allow)}">Allow</a> '
            f'<a id="deny" href="{html.escape(deny)}">Cancel</a>',
        )

    def issue_code(self, query: dict) -> str:
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = dict(query)
        return code

    def allow(self, query: dict) -> Reply:
        code = self.issue_code(query)
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return Reply(302, None, {"location": target})

    def token_error(self, status: int, error: str, description: str) -> Reply:
        return Reply(status, {"error": error, "error_description": description})

    def grants_refresh_token(self, consent: dict) -> bool:
        return True

    def rotates_refresh_tokens(self) -> bool:
        return False

    def _client_ok(self, form: dict, authorization: str) -> bool:
        if authorization.startswith("Basic "):
            pair = base64.b64decode(authorization[6:]).decode()
            return pair == f"{CLIENT_ID}:{CLIENT_SECRET}"
        return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET

    def _new_access(self, refresh: str) -> dict:
        access = secrets.token_urlsafe(16)
        self.access_tokens[access] = refresh
        return {"access_token": access, "token_type": "Bearer", "expires_in": 3599}

    def token(self, form: dict, authorization: str) -> Reply:
        with self.lock:
            self.token_requests.append(dict(form))
            if not self._client_ok(form, authorization):
                return self.token_error(401, "invalid_client", "Unauthorized client")
            grant = form.get("grant_type")
            if grant == "authorization_code":
                consent = self.codes.pop(form.get("code", ""), None)
                if consent is None:
                    return self.token_error(400, "invalid_grant", "Malformed auth code.")
                if consent.get("redirect_uri") != form.get("redirect_uri"):
                    return self.token_error(400, "redirect_uri_mismatch", "Bad Request")
                if s256(form.get("code_verifier", "")) != consent.get("code_challenge"):
                    return self.token_error(400, "invalid_grant", "Invalid code verifier.")
                answer = {"scope": consent.get("scope", ""), "id_token": id_token(self.email)}
                if self.grants_refresh_token(consent):
                    refresh = secrets.token_urlsafe(24)
                    self.refresh_tokens[refresh] = True
                    answer["refresh_token"] = refresh
                    answer.update(self._new_access(refresh))
                else:
                    answer.update(self._new_access(""))
                return Reply(200, answer)
            if grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                if not self.refresh_tokens.get(refresh):
                    return self.revoked_answer()
                answer = self._new_access(refresh)
                if self.rotates_refresh_tokens():
                    rotated = secrets.token_urlsafe(24)
                    self.refresh_tokens[rotated] = True
                    self.access_tokens[answer["access_token"]] = rotated
                    answer["refresh_token"] = rotated
                return Reply(200, answer)
            return self.token_error(400, "unsupported_grant_type", grant or "")

    def revoked_answer(self) -> Reply:
        return self.token_error(400, "invalid_grant", "Token has been expired or revoked.")

    def revoke_all(self) -> None:
        """The owner removed our access in their account settings."""
        with self.lock:
            for token in self.refresh_tokens:
                self.refresh_tokens[token] = False
            self.access_tokens.clear()

    def authorized(self, header: str) -> Reply | None:
        """None when the bearer token is good, else the 401."""
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            refresh = self.access_tokens.get(token)
        if refresh is None or (refresh and not self.refresh_tokens.get(refresh)):
            return Reply(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
        return None

    def throttled(self, status: int, wait: str | None) -> Reply:
        headers = {"Retry-After": wait} if wait is not None else {}
        return Reply(status, {"error": {"code": status, "message": "Rate Limit Exceeded"}}, headers)

    def api(self, method: str, path: str, query: dict, body, headers) -> Reply:
        raise NotImplementedError
