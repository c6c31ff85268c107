"""Outbound webhooks' plumbing: secrets, signatures, the address checks against SSRF (OWASP
API7) and the HTTP call, with no knowledge of what is delivered or to whom.

Two signatures travel with every delivery:

- Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp``
  and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, keyed with the
  base64-decoded part of the ``whsec_`` secret; one ``v1,`` signature per active secret,
  space-separated, so a receiver keeps verifying with either secret during a rotation.
- Seed 003's ``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, keyed with the
  secret string as the receiver holds it (the whole ``whsec_...`` text, UTF-8), as seed 003's
  ``verify_webhook_signature`` computes it; only the newest secret signs it, since the seed's
  recipe compares one signature.

A URL is refused unless it is ``https`` (``http`` where allowed) and every address its host
resolves to is a public one. The check runs when an endpoint is registered and again at each
delivery, and the connection itself goes to an address that passed the check (the lookup is
made once and its answer pinned), so a name that changes its answer between the check and the
connection (DNS rebinding) reaches nothing private.
"""

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
USER_AGENT = "TradeEngage-Webhooks/1.0"
# How much of a receiver's answer is kept for the admin and the owner's delivery list.
RESPONSE_START_BYTES = 1024
# The lookups run on a few threads of their own so that a slow resolver costs a caller at most
# its timeout; getaddrinfo itself cannot be interrupted.
_lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-dns")


class UnsafeUrl(ValueError):
    """A URL that must not be called: a scheme, host or address the checks refuse, or a name
    that cannot be resolved in time."""


class AddressRefused(OSError):
    """Raised while connecting, when no address of the host passes the checks: an ``OSError``,
    so that urllib3 and requests report it as a connection failure."""


def secret_generate() -> str:
    """A new signing secret in Standard Webhooks' format: ``whsec_`` and base64 of 24 random
    bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def standard_signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def seed003_signature(*, secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed_headers(
    *, message_id: str, timestamp: int, body: bytes, secrets: list[str]
) -> dict[str, str]:
    """The headers of one attempt; ``secrets`` newest first (at least one)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(secret=secret, message_id=message_id, timestamp=timestamp, body=body)
            for secret in secrets
        ),
        "X-Webhook-Signature": seed003_signature(secret=secrets[0], body=body),
    }


def address_is_public(address: str) -> bool:
    """Whether an IP address may be called: globally routable, not multicast. Refuses loopback,
    private (10/8, 172.16/12, 192.168/16), link-local (169.254/16, the cloud metadata
    address), CGNAT (100.64/10), unspecified, reserved and documentation ranges, IPv6
    loopback, unique-local and link-local, and the IPv4-mapped IPv6 forms of all of them."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def dns_lookup(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the resolver's answer, duplicates removed)."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(answer[4][0] for answer in answers))


def host_addresses(host: str, port: int, *, timeout: float) -> list[str]:
    """The addresses to call for ``host``: itself when it is an IP address, else what the
    resolver answers within ``timeout`` seconds. ``UnsafeUrl`` when it answers nothing in time."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        addresses = _lookups.submit(dns_lookup, host, port).result(timeout=timeout)
    except FutureTimeout:
        raise UnsafeUrl(f"The name {host} did not resolve within {timeout:g} s.") from None
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"The name {host} does not resolve ({exc}).") from None
    if not addresses:
        raise UnsafeUrl(f"The name {host} does not resolve.")
    return addresses


def allowed_addresses(host: str, port: int, *, allow_private: bool, timeout: float) -> list[str]:
    """The addresses of ``host`` that may be called; ``UnsafeUrl`` when it resolves to any
    address that may not (unless ``allow_private``): a name with one private answer among
    public ones is refused, or the connection could be steered to it."""
    addresses = host_addresses(host, port, timeout=timeout)
    if not allow_private:
        refused = [address for address in addresses if not address_is_public(address)]
        if refused:
            raise UnsafeUrl(
                f"{host} resolves to {refused[0]}, a loopback, private, link-local or otherwise "
                "non-public address; webhooks are delivered to public addresses only."
            )
    return addresses


def url_check(url: str, *, allow_http: bool, allow_private: bool, timeout: float) -> None:
    """Refuse (``UnsafeUrl``) a URL a webhook may not be sent to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Not a valid URL ({exc}).") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl(f"The URL must use {' or '.join(schemes)}.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not carry credentials.")
    default_port = 443 if parts.scheme == "https" else 80
    allowed_addresses(
        parts.hostname, port or default_port, allow_private=allow_private, timeout=timeout
    )


class _PinnedConnectionMixin:
    """Resolves the host once, checks the answer, and connects to an address that passed: the
    certificate is still checked against the host's name (``server_hostname`` is ``host``)."""

    allow_private = False
    lookup_timeout = 2.0

    def _new_conn(self):
        try:
            addresses = allowed_addresses(
                self.host,
                self.port,
                allow_private=self.allow_private,
                timeout=self.lookup_timeout,
            )
        except UnsafeUrl as exc:
            raise AddressRefused(str(exc)) from None
        self._dns_host = addresses[0]
        return super()._new_conn()


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, *, allow_private: bool, lookup_timeout: float):
        options = {"allow_private": allow_private, "lookup_timeout": lookup_timeout}
        connections = {
            "http": type("PinnedHTTPConnection", (_PinnedConnectionMixin, HTTPConnection), options),
            "https": type(
                "PinnedHTTPSConnection", (_PinnedConnectionMixin, HTTPSConnection), options
            ),
        }
        self._pool_classes = {
            "http": type(
                "PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": connections["http"]}
            ),
            "https": type(
                "PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": connections["https"]}
            ),
        }
        super().__init__(pool_connections=4, pool_maxsize=32, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


_sessions: dict[tuple[bool, float], requests.Session] = {}


def _session(*, allow_private: bool, lookup_timeout: float) -> requests.Session:
    key = (allow_private, lookup_timeout)
    if key not in _sessions:
        session = requests.Session()
        # No proxy from the environment: a proxy would make the connection, and its address
        # is not the one checked.
        session.trust_env = False
        adapter = _PinnedAdapter(allow_private=allow_private, lookup_timeout=lookup_timeout)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        _sessions[key] = session
    return _sessions[key]


@dataclass(frozen=True)
class SendResult:
    """What one attempt came to: the status the receiver answered (None when it answered
    nothing), how long it took, the first bytes of its answer, and what went wrong, if
    anything. ``succeeded`` only for a 2xx answered within the timeout."""

    status: int | None
    duration_ms: int
    response_start: str = ""
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return not self.error and self.status is not None and 200 <= self.status < 300


def webhook_send(
    *,
    url: str,
    message_id: str,
    body: bytes,
    secrets: list[str],
    timeout: float,
    allow_http: bool,
    allow_private: bool,
    lookup_timeout: float,
    timestamp: int | None = None,
) -> SendResult:
    """POST one signed delivery. Never raises for anything the receiver or the network does:
    redirects are not followed (a 3xx is a failure), an answer slower than ``timeout`` seconds
    in all is a failure, and a URL or address the checks refuse is a failure sent nowhere."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    clock = time.monotonic()

    def elapsed_ms() -> int:
        return round((time.monotonic() - clock) * 1000)

    try:
        url_check(url, allow_http=allow_http, allow_private=allow_private, timeout=lookup_timeout)
    except UnsafeUrl as exc:
        return SendResult(status=None, duration_ms=elapsed_ms(), error=f"Refused: {exc}")
    headers = signed_headers(message_id=message_id, timestamp=timestamp, body=body, secrets=secrets)
    session = _session(allow_private=allow_private, lookup_timeout=lookup_timeout)
    try:
        with session.post(
            url,
            data=body,
            headers=headers,
            timeout=(min(timeout, 5.0), timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            start = next(response.iter_content(RESPONSE_START_BYTES), b"")[:RESPONSE_START_BYTES]
            status = response.status_code
    except requests.RequestException as exc:
        return SendResult(
            status=None, duration_ms=elapsed_ms(), error=f"{type(exc).__name__}: {exc}"
        )
    duration_ms = elapsed_ms()
    text = start.decode("utf-8", errors="replace")
    error = ""
    if duration_ms > timeout * 1000:
        error = f"Answered after {duration_ms} ms; only an answer within {timeout:g} s counts."
    elif 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed."
    elif not 200 <= status < 300:
        error = f"HTTP {status}"
    return SendResult(status=status, duration_ms=duration_ms, response_start=text, error=error)
