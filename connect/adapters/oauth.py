"""OAuth 2.0 client credentials (RFC 6749 §4.4) for CPMS that log in the way APDS 4 specifies.

APDS 4 (``apiv4/apds4.yaml``, ``components.securitySchemes.oAuth``) secures every endpoint with the
``clientCredentials`` flow: the client posts ``grant_type=client_credentials`` (optionally a
``scope``: po, sp, ep, ad) to the ``tokenUrl`` and sends the ``access_token`` it gets back as a
bearer token until it expires. A fixed bearer token copied into the connection therefore expires
one day and every sync fails for good; with this module the token is fetched, cached until shortly
before ``expires_in`` runs out, and fetched again when the CPMS answers 401 (once per request), so
an expired token never becomes an incident.

Connection options: ``token_url`` (relative to the base URL or absolute), ``client_id``, optional
``scope`` and ``token_auth`` (``basic``: the client authenticates with HTTP Basic as RFC 6749
§2.3.1 prefers; otherwise ``client_id``/``client_secret`` go in the form body, which the RFC
allows and many servers expect). The connection's secret is the client secret.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.auth import AuthBase

from .base import CpmsMalformed, CpmsRejected, CpmsUnavailable

# A token is used until this many seconds before it expires (a tenth of its lifetime when shorter).
EXPIRY_MARGIN_SECONDS = 60.0
# When the token endpoint does not say how long a token lasts (expires_in is only RECOMMENDED).
DEFAULT_LIFETIME_SECONDS = 300.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
CACHE_PREFIX = "connect:oauth:"
# OAuth error codes (RFC 6749 §5.2) that mean the client itself was refused.
CLIENT_REFUSED = {"invalid_client", "unauthorized_client", "access_denied"}


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.time() after which the token is not used any more


def oauth_configured(options: dict[str, Any]) -> bool:
    return bool(str(options.get("token_url") or "").strip())


class ClientCredentials:
    """Fetches and caches access tokens of one client at one CPMS.

    The token is kept in this object and in Django's cache (encrypted with the connection secrets'
    key), shared by every worker that talks to the same CPMS as the same client; a cache that is
    down only means more token requests.
    """

    def __init__(self, *, base_url: str, options: dict[str, Any], client_secret: str, timeout: float):
        self.base_url = base_url.rstrip("/")
        token_url = str(options.get("token_url") or "").strip()
        self.token_url = (
            token_url if token_url.startswith(("http://", "https://")) else f"{self.base_url}/{token_url.lstrip('/')}"
        )
        self.client_id = str(options.get("client_id") or "").strip()
        self.scope = str(options.get("scope") or "").strip()
        self.basic = str(options.get("token_auth") or "").strip().lower() == "basic"
        self.client_secret = client_secret
        self.timeout = timeout
        self._token: Token | None = None
        self._lock = threading.Lock()
        if not self.client_id:
            raise CpmsRejected("the connection has a token URL but no client id: add option client_id")
        # The secret is part of the key: after it is changed, a token got with the old one is not used.
        key = "\n".join((self.base_url, self.token_url, self.client_id, self.scope, client_secret))
        self.cache_key = CACHE_PREFIX + hashlib.sha256(key.encode()).hexdigest()

    # --- the token ---------------------------------------------------------------------------
    def token(self, *, stale: str = "") -> str:
        """A usable access token; ``stale`` is one the CPMS just refused (never handed out again)."""
        with self._lock:
            now = time.time()
            for candidate in (self._token, self._cached()):
                if candidate and candidate.value != stale and candidate.expires_at > now:
                    self._token = candidate
                    return candidate.value
            self._token = self._fetch()
            self._store(self._token)
            return self._token.value

    def _fetch(self) -> Token:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        auth = None
        if self.basic:
            auth = (self.client_id, self.client_secret)
        else:
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        what = f"the token endpoint {self.token_url}"
        try:
            response = requests.post(
                self.token_url,
                data=data,
                auth=auth,
                headers={"Accept": "application/json", "User-Agent": "ParkingHQ-Connect/1.0"},
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
            body = _read_capped(response, what)
        except requests.Timeout:
            raise CpmsUnavailable(f"{what} timed out after {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise CpmsUnavailable(f"{what} could not be reached ({str(exc)[:150]})") from None
        if response.status_code >= 500:
            raise CpmsUnavailable(f"{what} answered HTTP {response.status_code}")
        payload = _json(body)
        if response.status_code != 200:
            raise self._refused(response.status_code, payload)
        if not isinstance(payload, dict):
            raise CpmsMalformed(f"{what} did not answer with a JSON token response")
        value = payload.get("access_token")
        if not isinstance(value, str) or not value.strip():
            raise CpmsMalformed(f"{what} answered without an access_token")
        token_type = str(payload.get("token_type") or "bearer").lower()
        if token_type != "bearer":
            raise CpmsRejected(f"{what} issued a {token_type!r} token; only bearer tokens are supported")
        lifetime = _lifetime(payload.get("expires_in"))
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        return Token(value=value.strip(), expires_at=time.time() + lifetime - margin)

    def _refused(self, status: int, payload: Any) -> CpmsRejected:
        error = str(payload.get("error") or "") if isinstance(payload, dict) else ""
        detail = str(payload.get("error_description") or "")[:200] if isinstance(payload, dict) else ""
        suffix = f" ({error}{': ' + detail if detail else ''})" if error else f" (HTTP {status})"
        if error == "invalid_scope":
            return CpmsRejected(
                f"the CPMS refused scope {self.scope!r} for client id {self.client_id}: check option scope{suffix}"
            )
        if status == 404:
            return CpmsRejected(f"the token endpoint {self.token_url} answered HTTP 404: check option token_url")
        if error in CLIENT_REFUSED or (status in (400, 401, 403) and error in ("", "invalid_grant", "invalid_request")):
            return CpmsRejected(f"the CPMS refused client id {self.client_id}: check the client secret{suffix}")
        return CpmsRejected(f"the token endpoint {self.token_url} refused the request{suffix}")

    # --- the shared cache ----------------------------------------------------------------------
    def _cached(self) -> Token | None:
        from connect import crypto

        stored = _cache_call("get", self.cache_key)
        if not isinstance(stored, dict):
            return None
        try:
            return Token(value=crypto.decrypt(stored["token"]), expires_at=float(stored["expires_at"]))
        except (KeyError, TypeError, ValueError, crypto.SecretUnreadable):
            return None

    def _store(self, token: Token) -> None:
        from connect import crypto

        seconds = max(1, int(token.expires_at - time.time()))
        _cache_call(
            "set", self.cache_key, {"token": crypto.encrypt(token.value), "expires_at": token.expires_at}, seconds
        )


class BearerFromClientCredentials(AuthBase):
    """``requests`` auth: the current token as bearer; on a 401 one fresh token and one retry.

    Works like ``requests.auth.HTTPDigestAuth``: the 401 answer is consumed and the same prepared
    request is sent again on the same connection with the new token. A second 401 is returned as
    it is, and the adapter reports it as refused credentials.
    """

    def __init__(self, credentials: ClientCredentials):
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.credentials.token()}"
        request.register_hook("response", self._retry_on_401)
        return request

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or getattr(response.request, "_oauth_retried", False):
            return response
        refused = str(response.request.headers.get("Authorization", "")).removeprefix("Bearer ")
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {self.credentials.token(stale=refused)}"
        retry._oauth_retried = True  # type: ignore[attr-defined]
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        return second


def _lifetime(value: Any) -> float:
    if value in (None, ""):
        return DEFAULT_LIFETIME_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise CpmsMalformed(f"the token response's expires_in {value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise CpmsMalformed(f"the token response's expires_in {value!r} is not a positive number of seconds")
    return seconds


def _read_capped(response: requests.Response, what: str) -> bytes:
    body = b""
    for chunk in response.iter_content(8192):
        body += chunk
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            response.close()
            raise CpmsMalformed(f"{what} answered with more than {MAX_TOKEN_RESPONSE_BYTES // 1024} KB")
    return body


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class ClientCredentialsMixin:
    """Adapter mixin: with option ``token_url`` the secret is a client secret, never sent as a bearer token."""

    # Templates reach the class through CpmsConnection.adapter_class (its spec_version): never call it.
    do_not_call_in_templates = True

    def __init__(self, *, base_url: str, **kwargs: Any):
        # The keyword-only base_url keeps the signature of CpmsAdapter (templates that meet the class
        # see that it cannot be called without arguments).
        super().__init__(base_url=base_url, **kwargs)  # type: ignore[call-arg]
        if oauth_configured(self.options):  # type: ignore[attr-defined]
            self.session.headers.pop("Authorization", None)  # type: ignore[attr-defined]
            self.credentials = ClientCredentials(
                base_url=self.base_url,  # type: ignore[attr-defined]
                options=self.options,  # type: ignore[attr-defined]
                client_secret=self.secret,  # type: ignore[attr-defined]
                timeout=self.timeout,  # type: ignore[attr-defined]
            )
            self.session.auth = BearerFromClientCredentials(self.credentials)  # type: ignore[attr-defined]


def _cache_call(method: str, *args: Any) -> Any:
    """Django's cache, or nothing when Django is not configured (the adapter used on its own)."""
    try:
        from django.core.cache import cache

        return getattr(cache, method)(*args)
    except Exception:  # noqa: BLE001 - a cache is an optimisation: a missing one means a new token
        return None
