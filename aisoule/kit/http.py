"""Outbound HTTP to URLs that users supply (media links now; webhooks and flow HTTP nodes later).

A user's URL must not reach what only the server can reach: loopback, private networks, cloud
metadata at 169.254.169.254. Every address is checked where the connection is made: the
connector's resolver refuses a name if any address it resolves to is not allowed, and a literal
IP in the URL is checked the same way before the request (aiohttp does not resolve those). No
address is checked ahead and connected to later, so a name that resolves to a public address once
and to 127.0.0.1 a moment later (DNS rebinding) gets nowhere; the DNS cache is off, so every
connection resolves (and is checked) afresh. Redirects are followed here, a few at most, each hop
checked again. Time and answer size are bounded, and errors carry one of our fixed reasons, never
what the target answered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NOT_ALLOWED = "address not allowed"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Refused whatever ``ipaddress`` thinks of them (named explicitly: its flags have changed between
# Python versions). Anything else that is not globally routable is refused too (``is_global``).
_FORBIDDEN: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible
        "::ffff:0:0/96",  # IPv4-mapped (::ffff:127.0.0.1)
        "64:ff9b::/96",  # NAT64: an IPv4 address inside
        "64:ff9b:1::/48",  # local NAT64
        "100::/64",  # discard
        "2001::/32",  # Teredo: an IPv4 address inside
        "2002::/16",  # 6to4: an IPv4 address inside
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)


class FetchError(Exception):
    """The URL was not fetched. ``reason`` is one of this module's fixed texts (safe to show the
    user); ``refused`` is True when the rules refused it (no connection was attempted)."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class _AddressRefused(Exception):
    """Raised by the resolver; not an OSError, so aiohttp passes it through unwrapped."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, 192.168.1.5"`` -> networks; ValueError naming the entry that is not one."""
    out: list[IPNetwork] = []
    for part in text.replace(";", ",").split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {entry!r}") from None
    return tuple(out)


def address_allowed(addr: IPAddress, allow: Iterable[IPNetwork] = ()) -> bool:
    """A public address, or one the operator's allow-list admits."""
    if any(addr.version == net.version and addr in net for net in allow):
        return True
    if any(addr.version == net.version and addr in net for net in _FORBIDDEN):
        return False
    return bool(addr.is_global) and not (
        addr.is_multicast or addr.is_reserved or addr.is_unspecified or addr.is_loopback
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Policy:
    """What user-supplied URLs may reach. ``trusted_prefixes`` are URLs the server itself
    configured (the WhatsApp emulator's own base URL): URLs under one are admitted whatever their
    address, nothing else on that host and port is."""

    allow_networks: tuple[IPNetwork, ...] = ()
    trusted_prefixes: tuple[str, ...] = ()
    timeout: float = 5.0  # seconds, for the whole exchange including redirects
    max_redirects: int = 3
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = 8190  # per header line (aiohttp's default)

    def _trusted(self) -> list[URL]:
        return [URL(p) for p in self.trusted_prefixes]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str


class _CheckingResolver(AbstractResolver):
    """Resolves as aiohttp would, then refuses the name if any address is not allowed."""

    def __init__(
        self,
        policy: Policy,
        trusted: frozenset[tuple[str, int]],
        inner: AbstractResolver | None = None,
    ) -> None:
        self._inner = inner or DefaultResolver()
        self._policy = policy
        self._trusted = trusted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if (host.lower().rstrip("."), port) in self._trusted:
            return results
        for result in results:
            addr = _literal(str(result["host"]).split("%")[0])
            if addr is None or not address_allowed(addr, self._policy.allow_networks):
                raise _AddressRefused(NOT_ALLOWED)
        return results

    async def close(self) -> None:
        await self._inner.close()


class SafeClient:
    """``async with SafeClient(policy) as http: await http.request("HEAD", url)``."""

    def __init__(self, policy: Policy, resolver: AbstractResolver | None = None) -> None:
        """``resolver``: how names are resolved (default aiohttp's); its answers are checked."""
        self.policy = policy
        self._resolver = resolver
        self._prefixes = policy._trusted()
        self._trusted_hosts = frozenset(
            ((p.host or "").lower().rstrip("."), p.port or 0) for p in self._prefixes
        )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SafeClient:
        connector = aiohttp.TCPConnector(
            resolver=_CheckingResolver(self.policy, self._trusted_hosts, self._resolver),
            use_dns_cache=False,
            force_close=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout),
            trust_env=False,  # no proxy from the environment: it would connect for us, unchecked
            auto_decompress=False,
            max_line_size=self.policy.max_header_bytes,
            max_field_size=self.policy.max_header_bytes,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_url(self, url: str | URL) -> URL:
        """The URL as it will be requested, or FetchError (refused) before any connection."""
        try:
            target = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            raise FetchError("not a valid URL", refused=True) from None
        if target.scheme not in ("http", "https"):
            raise FetchError("only http and https URLs are fetched", refused=True)
        if target.user is not None or target.password is not None:
            raise FetchError("credentials in URLs are not accepted", refused=True)
        host = (target.host or "").lower().rstrip(".")
        if not host or target.port is None:
            raise FetchError("not a valid URL", refused=True)
        if (host, target.port) in self._trusted_hosts:
            if any(self._under(target, p) for p in self._prefixes):
                return target
            raise FetchError(NOT_ALLOWED, refused=True)
        addr = _literal(host.split("%")[0])
        if addr is not None and not address_allowed(addr, self.policy.allow_networks):
            raise FetchError(NOT_ALLOWED, refused=True)
        return target

    @staticmethod
    def _under(target: URL, prefix: URL) -> bool:
        if (target.scheme, target.host, target.port) != (prefix.scheme, prefix.host, prefix.port):
            return False
        base = prefix.path.rstrip("/")
        return (target.path == base or target.path.startswith(base + "/")) and (
            ".." not in target.path.split("/")
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        read_body: bool = True,
    ) -> Response:
        """One exchange, redirects followed (and checked) here. The body is read up to
        ``max_body_bytes`` (more is a FetchError). Never raises anything but FetchError."""
        assert self._session is not None, "use SafeClient as an async context manager"
        try:
            async with asyncio.timeout(self.policy.timeout):
                return await self._follow(method.upper(), url, headers, data, read_body)
        except FetchError:
            raise
        except _AddressRefused:
            raise FetchError(NOT_ALLOWED, refused=True) from None
        except TimeoutError:
            raise FetchError(f"no answer within {self.policy.timeout:g} s") from None
        except aiohttp.InvalidURL:
            raise FetchError("not a valid URL", refused=True) from None
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.__cause__, _AddressRefused):  # pragma: no cover - passed unwrapped
                raise FetchError(NOT_ALLOWED, refused=True) from None
            raise FetchError("the host name does not resolve") from None
        except aiohttp.ClientConnectorError:
            raise FetchError("could not connect") from None
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError):
            raise FetchError("the answer was too large or not valid HTTP") from None
        except (aiohttp.ClientError, ValueError, OSError):
            raise FetchError("the request failed") from None

    async def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        read_body: bool,
    ) -> Response:
        assert self._session is not None
        current: str | URL = url
        for _ in range(self.policy.max_redirects + 1):
            target = self.check_url(current)
            async with self._session.request(
                method, target, headers=headers, data=data, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    try:
                        current = target.join(URL(location))
                    except (ValueError, TypeError):
                        raise FetchError("the URL redirects to an invalid URL") from None
                    if URL(current).origin() != target.origin():
                        # The caller's headers (a webhook's signature) and body were meant for the
                        # server it named, not for whichever one that server sends us to.
                        headers = None
                        if data is not None:
                            raise FetchError("the URL redirects a request with a body elsewhere")
                    if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                        method, data = ("HEAD" if method == "HEAD" else "GET"), None
                    continue
                body = await self._read(resp) if read_body and method != "HEAD" else b""
                headers_ = CIMultiDictProxy(CIMultiDict(resp.headers))
                return Response(resp.status, headers_, body, str(target))
        raise FetchError(f"more than {self.policy.max_redirects} redirects")

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.policy.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise FetchError(f"the answer is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


async def fetch(policy: Policy, method: str, url: str, **kwargs: Any) -> Response:
    """One request with a client of its own (see SafeClient.request)."""
    async with SafeClient(policy) as client:
        return await client.request(method, url, **kwargs)
