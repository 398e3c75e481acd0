"""OAuth 2.0 for the calendar providers (Google, Microsoft identity platform): the
authorization-code flow with PKCE and offline access, refresh tokens turned into access
tokens, and every provider answer turned into CalendarFailure, NeedsReconnect or Throttled.

authlib builds the authorization URI and the token request bodies (RFC 6749) and the PKCE
challenge (RFC 7636); httpx, already our HTTP client, sends them. Why not google-auth-oauthlib
and msal: one small flow for both providers instead of two libraries, each on its own HTTP
stack (requests), for the three exchanges we need; and authlib's own httpx integration warns
that it is deprecated.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from hashlib import sha256

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from booking_service.ports.calendars import CalendarFailure, NeedsReconnect, Throttled

# An access token is renewed this long before the provider says it expires.
EXPIRY_MARGIN_S = 60
# A Retry-After longer than this is not waited for in the worker's thread: the push or poll
# is deferred that long instead.
MAX_INLINE_WAIT_S = 5.0
_AADSTS = re.compile(r"AADSTS\d+")


@dataclass(frozen=True)
class OAuthClient:
    """One provider's registration: who we are to it, where its endpoints are, what we ask
    for."""

    name: str  # "Google", "Microsoft": for messages
    client_id: str
    client_secret: str = field(repr=False)
    auth_url: str
    token_url: str
    scopes: tuple[str, ...]
    # Provider-specific authorization parameters (Google: access_type=offline, prompt=consent).
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.client_id)


@dataclass(frozen=True)
class Grant:
    """What the token endpoint gave for a consent: the refresh token (to seal) and the
    account's email when the provider said it."""

    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    expires_in: int
    email: str | None


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters from the unreserved set (RFC 7636: 43 to 128)."""
    return generate_token(64)


def new_state() -> str:
    """The `state` parameter: 256 random bits, used once."""
    return generate_token(43)


def authorize_url(client: OAuthClient, redirect_uri: str, state: str, verifier: str) -> str:
    """The provider's consent page for this connection (S256 PKCE, offline access)."""
    return prepare_grant_uri(
        client.auth_url,
        client.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=" ".join(client.scopes),
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        **dict(client.extra),
    )


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (seconds or an HTTP date), None without one."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _token_failure(client: OAuthClient, response: httpx.Response) -> CalendarFailure:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    if response.status_code == 429 or response.status_code >= 500:
        return Throttled(
            f"{client.name}'s sign-in service answered {response.status_code}",
            retry_after(response.headers.get("Retry-After")),
        )
    code = _AADSTS.search(description)
    if error == "invalid_grant" or code is not None:
        # Revoked, expired, or the password changed: only the owner can fix it.
        why = f"{error}{f', {code.group(0)}' if code else ''}"
        return NeedsReconnect(f"{client.name} no longer accepts this calendar's grant ({why})")
    if error in ("invalid_client", "unauthorized_client"):
        return CalendarFailure(
            f"{client.name} refused this service's client id or secret ({error}): check the "
            "app registration"
        )
    return CalendarFailure(
        f"{client.name}'s sign-in service refused the request ({error or response.status_code})"
    )


def _email(id_token: str | None) -> str | None:
    """The email claim of an ID token received straight from the token endpoint over TLS
    (OpenID Connect Core 3.1.3.7: its signature need not be checked then); for display."""
    if not id_token or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    found = claims.get("email") or claims.get("preferred_username")
    return str(found) if found else None


def _post_token(client: OAuthClient, body: str, timeout_s: float) -> dict:
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    try:
        response = httpx.post(
            client.token_url,
            content=body,
            auth=auth,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise CalendarFailure(
            f"{client.name}'s sign-in service could not be reached ({type(exc).__name__})"
        ) from None
    if response.status_code != 200:
        raise _token_failure(client, response)
    try:
        answer = response.json()
    except ValueError:
        raise CalendarFailure(f"{client.name}'s sign-in service answered nonsense") from None
    if not isinstance(answer, dict) or not answer.get("access_token"):
        raise CalendarFailure(f"{client.name}'s sign-in service gave no access token")
    return answer


def exchange_code(
    client: OAuthClient, code: str, redirect_uri: str, verifier: str, timeout_s: float
) -> Grant:
    """Trade the callback's code (with the PKCE verifier) for tokens; NeedsReconnect when the
    code is refused, CalendarFailure when no refresh token came (offline access refused)."""
    body = prepare_token_request(
        "authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        client_id=client.client_id,
    )
    answer = _post_token(client, body, timeout_s)
    refresh = answer.get("refresh_token")
    if not refresh:
        raise CalendarFailure(
            f"{client.name} gave no refresh token (offline access was not granted): connect "
            "again and allow it"
        )
    return Grant(
        refresh_token=str(refresh),
        access_token=str(answer["access_token"]),
        expires_in=int(answer.get("expires_in") or 3600),
        email=_email(answer.get("id_token")),
    )


class AccessTokens:
    """Access tokens by refresh token, renewed shortly before they expire: a poll every
    minute does not cost a token request every minute (the providers count those too)."""

    def __init__(self, client: OAuthClient):
        self.client = client
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}

    def get(
        self, refresh_token: str, renewed: list[str], timeout_s: float, *, fresh: bool = False
    ) -> str:
        """A valid access token; `fresh` forces a new one (the API refused the cached one).
        A rotated refresh token is appended to `renewed`."""
        key = sha256(refresh_token.encode()).hexdigest()
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not fresh and cached[1] > time.monotonic():
            return cached[0]
        body = prepare_token_request(
            "refresh_token", refresh_token=refresh_token, client_id=self.client.client_id
        )
        answer = _post_token(self.client, body, timeout_s)
        token = str(answer["access_token"])
        expires = time.monotonic() + int(answer.get("expires_in") or 3600) - EXPIRY_MARGIN_S
        with self._lock:
            self._tokens[key] = (token, expires)
            rotated = answer.get("refresh_token")
            if rotated and rotated != refresh_token:
                # Microsoft rotates refresh tokens: the caller keeps the newest.
                renewed.append(str(rotated))
                self._tokens[sha256(str(rotated).encode()).hexdigest()] = (token, expires)
        return token


class ApiSession:
    """Authorized JSON calls to one provider's API for one linked calendar: a refused access
    token is renewed once; 429 and 5xx are retried after the Retry-After they give when it is
    short (else Throttled carries it to the worker's backoff)."""

    def __init__(
        self,
        tokens: AccessTokens,
        refresh_token: str,
        renewed: list[str],
        timeout_s: float,
        throttled: tuple[int, ...] = (429,),
    ):
        self._tokens = tokens
        self._refresh = refresh_token
        self._renewed = renewed
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + 3 * timeout_s
        self._throttled = throttled
        self.name = tokens.client.name
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def __enter__(self) -> ApiSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.close()

    def call(self, method: str, url: str, **kwargs) -> httpx.Response:
        """The answer to one request (any status but 401, 429 and 5xx, which are handled)."""
        fresh = False
        attempt = 0
        while True:
            attempt += 1
            token = self._tokens.get(self._refresh, self._renewed, self._timeout_s, fresh=fresh)
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
            try:
                response = self._http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise CalendarFailure(
                    f"{self.name}'s calendar could not be reached ({type(exc).__name__})"
                ) from None
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if response.status_code == 401 and not fresh:
                fresh = True  # revoked or expired early: one new token, then believe it
                continue
            if response.status_code == 401:
                raise NeedsReconnect(f"{self.name} refused the calendar's access token")
            if response.status_code in self._throttled or response.status_code >= 500:
                wait = retry_after(response.headers.get("Retry-After"))
                left = self._deadline - time.monotonic()
                pause = wait if wait is not None else 0.5 * attempt
                if attempt < 3 and pause <= min(MAX_INLINE_WAIT_S, left):
                    time.sleep(pause)
                    continue
                raise Throttled(
                    f"{self.name}'s calendar answered {response.status_code}; waiting before "
                    "trying again",
                    wait,
                )
            return response
