"""A small HTTP proxy in front of localstripe that plays the parts of Stripe that localstripe lacks.

- **Lost answers**: for chosen requests it forwards the request (Stripe does the work) and then
  closes the connection without answering, as a network that drops the response does.
- **Idempotency**: Stripe stores the answer to a POST with an ``Idempotency-Key`` for 24 hours and
  replays it to a retry with the same key; localstripe ignores the header. The proxy keeps the
  answers per key and replays them; :meth:`StripeProxy.forget_keys` is the 24 hours passing.
- **Endpoints localstripe does not serve** (``/v1/balance_transactions``): canned JSON written from
  Stripe's API reference, set with :meth:`StripeProxy.serve`.
- **Answers localstripe gives differently**: :meth:`StripeProxy.rewrite` changes the JSON answer of a
  request as Stripe would give it (e.g. a SEPA debit that localstripe settles at once is ``processing``
  at Stripe for days); the request itself still runs in localstripe.

Every request is recorded (method, path, headers, form body) for assertions.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    replayed: bool = False
    dropped: bool = False


@dataclass
class _Drop:
    method: str
    path: str
    times: int


@dataclass
class StripeProxy:
    upstream: str
    requests: list[Seen] = field(default_factory=list)
    _drops: list[_Drop] = field(default_factory=list)
    _answers: dict[str, tuple[int, list[tuple[str, str]], bytes]] = field(default_factory=dict)
    _canned: dict[str, object] = field(default_factory=dict)
    _rewrites: list[tuple[str, str, Callable[[dict, dict], dict]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path_only = urlsplit(self.path).path
                seen = Seen(
                    self.command,
                    path_only,
                    {k.lower(): v for k, v in self.headers.items()},
                    dict(parse_qsl(body.decode(), keep_blank_values=True)),
                )
                with proxy._lock:
                    proxy.requests.append(seen)
                    canned = proxy._canned.get(path_only)
                    key = self.headers.get("Idempotency-Key") if self.command == "POST" else None
                    stored = proxy._answers.get(key) if key else None
                if canned is not None:
                    self._answer(200, [("Content-Type", "application/json")], json.dumps(canned).encode())
                    return
                if stored is not None:
                    seen.replayed = True
                    answer = stored
                else:
                    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    response = connection.getresponse()
                    answer = (response.status, response.getheaders(), response.read())
                    connection.close()
                    answer = proxy._rewritten(seen, answer)
                    # Stripe keeps the first answer, a failure too, unless the request never ran.
                    if key and answer[0] not in (400, 409):
                        with proxy._lock:
                            proxy._answers[key] = answer
                if proxy._take_drop(self.command, path_only):
                    seen.dropped = True
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._answer(*answer)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def drop(self, method: str, path: str, times: int = 1) -> None:
        """Forward the next ``times`` requests to ``path`` but lose their answers."""
        with self._lock:
            self._drops.append(_Drop(method, path, times))

    def _take_drop(self, method: str, path: str) -> bool:
        with self._lock:
            for rule in self._drops:
                if rule.method == method and rule.path == path and rule.times > 0:
                    rule.times -= 1
                    return True
        return False

    def forget_keys(self) -> None:
        """Stripe prunes idempotency keys after 24 hours: a reused key is then a new request."""
        with self._lock:
            self._answers.clear()

    def serve(self, path: str, payload: object) -> None:
        with self._lock:
            self._canned[path] = payload

    def rewrite(self, method: str, path: str, change: Callable[[dict, dict], dict]) -> None:
        """Pass every successful JSON answer to ``method path`` through ``change(answer, request form)``."""
        with self._lock:
            self._rewrites.append((method, path, change))

    def _rewritten(self, seen: Seen, answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple:
        status, headers, body = answer
        with self._lock:
            changes = [change for m, p, change in self._rewrites if m == seen.method and p == seen.path]
        if not changes or status != 200:
            return answer
        data = json.loads(body)
        for change in changes:
            data = change(data, seen.form)
        return status, headers, json.dumps(data).encode()

    def seen(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]
