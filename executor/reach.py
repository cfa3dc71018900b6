"""Whether an HTTP endpoint can be reached at all, asked once before a run is recorded.

:func:`unreachable` resolves the endpoint's host name and opens (and closes) one TCP connection to its
port: through the proxy the environment names for it, if any (``HTTPS_PROXY``, ``ALL_PROXY``... unless
``NO_PROXY`` exempts the host), as the HTTP client would. It reports the two failures that no retry
mends and that a run would otherwise spend its retries on: a host name that does not resolve, and a port
where nothing listens (connection refused). Anything else (a lookup or a connection that takes longer
than :data:`PROBE_TIMEOUT_S`, an unreachable network) is left for the run's own retries: the probe must
never stop a run that could go. It sends no request and reads nothing. It must not import an HTTP client.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

PROBE_TIMEOUT_S = 5.0
"""The longest the probe waits for the host name's lookup, and then for the connection."""

_FINAL_LOOKUP_ERRORS = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)
"""Lookup failures that mean the name has no address (rather than that the resolver did not answer)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a client connects for a URL: the URL's host and port, or its proxy's."""

    host: str
    port: int
    proxy: str | None = None
    """The proxy's URL, when the connection goes through one."""


def endpoint(url: str) -> Endpoint:
    """Where a client connects to reach ``url``; ValueError when ``url`` names no host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host name")
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        through = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if through.hostname:
            default = 443 if through.scheme == "https" else 80
            return Endpoint(through.hostname, through.port or default, proxy)
    return Endpoint(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def unreachable(url: str) -> str | None:
    """Why ``url`` cannot be reached, in a few words, when that is certain; None otherwise."""
    try:
        target = endpoint(url)
    except ValueError as exc:
        return str(exc)
    where = f"through the proxy {target.proxy}, " if target.proxy else ""
    addresses = _lookup(target.host, target.port)
    if isinstance(addresses, socket.gaierror):
        reason = addresses.strerror or str(addresses)
        return f"{where}host name '{target.host}' does not resolve ({reason})"
    if not addresses:
        return None  # the resolver did not answer in time: the run finds out for itself
    for family, kind, protocol, _, address in addresses:
        with contextlib.closing(socket.socket(family, kind, protocol)) as probe:
            probe.settimeout(PROBE_TIMEOUT_S)
            try:
                probe.connect(address)
            except ConnectionRefusedError:
                continue  # perhaps another of its addresses listens
            except OSError:
                return None
            return None
    return f"{where}{target.host}:{target.port} refuses connections (nothing listens there)"


def _lookup(host: str, port: int) -> list[Any] | socket.gaierror:
    """``host``'s addresses (``getaddrinfo``'s tuples); the lookup's error when the name has none; []
    when the resolver is slow or fails otherwise. The lookup runs in a daemon thread, so a resolver that
    hangs holds nobody up."""
    found: list[Any] = []

    def look() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except socket.gaierror as exc:
            found.append(exc)
        except (OSError, UnicodeError):
            found.append([])

    looking = threading.Thread(target=look, name=f"lookup {host}", daemon=True)
    looking.start()
    looking.join(PROBE_TIMEOUT_S)
    if not found:
        return []
    result = found[0]
    if isinstance(result, socket.gaierror):
        return result if result.errno in _FINAL_LOOKUP_ERRORS else []
    return list(result)
