"""Two questions every request handler must answer the same way: who is asking, and where may we
send them back to.

``client_ip`` is the only place that reads ``X-Forwarded-For``. The header is trusted only when the
connection comes from a proxy listed in ``settings.TRUSTED_PROXIES``; anybody else could write any
address into it, and would then choose which address the lockout, the throttles and the logs see.

``safe_url`` / ``safe_next`` are the only way a page redirects to an address that came from the
request (a ``next`` field): anything that is not a path on this host (over HTTPS when the request
was) becomes the page's default, so the portal can never be used as an open redirect.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:203.0.113.7) is the IPv4 client.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str:
    """The address of the client that sent ``request``.

    ``REMOTE_ADDR`` unless it is a trusted proxy; then ``X-Forwarded-For`` is read from the right
    (each proxy appends the address it saw) and the first address that is not itself a trusted
    proxy is the client. Entries further left were written by the client and are ignored. An entry
    that is not an IP address stops the walk at the proxy that passed it on.
    """
    remote = request.META.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    current = _address(remote)
    if current is None or not networks or not _is_trusted(current, networks):
        return str(current) if current is not None else remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _address(hop)
        if address is None:
            break
        current = address
        if not _is_trusted(address, networks):
            break
    return str(current)


def is_safe_redirect(request: HttpRequest, url: str | None) -> bool:
    """Whether ``url`` stays on this host (and on HTTPS if the request came over HTTPS)."""
    return bool(url) and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


def safe_url(request: HttpRequest, url: str | None, default: str = "portal-home") -> str:
    """``url`` when it is a safe redirect (``is_safe_redirect``), else ``default`` (a URL name or
    path, resolved)."""
    return url if url and is_safe_redirect(request, url) else resolve_url(default)


def safe_next(request: HttpRequest, default: str = "portal-home") -> str:
    """Where to go after a form: the ``next`` field (POST, then query string) if it is safe."""
    return safe_url(request, request.POST.get("next") or request.GET.get("next") or "", default)
