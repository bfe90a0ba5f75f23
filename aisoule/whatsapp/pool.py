"""The seam between an account's provider kind and the client that serves it.

``ProviderPool.resolve(kind)`` is the one place that chooses between Meta's Graph API and the
bundled emulator: one pooled client per kind, per process. Callers talk to the answer through
``WhatsAppProvider`` only (``ensure_number`` included), never by URL.
"""

from __future__ import annotations

from aisoule.config import Settings
from aisoule.whatsapp.cloud.client import CloudAPIClient
from aisoule.whatsapp.provider import ProviderKind, ProviderOff, WhatsAppProvider
from aisoule.whatsapp.sandbox import SandboxProvider


class ProviderPool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[ProviderKind, CloudAPIClient] = {}

    def resolve(self, kind: str) -> WhatsAppProvider:
        """The provider for an account's ``provider`` kind; ``ProviderOff`` when this server
        does not serve it (a sandbox account while the emulator is off)."""
        try:
            key = ProviderKind(kind)
        except ValueError:
            raise ProviderOff(f"unknown provider {kind!r}") from None
        found = self._clients.get(key)
        if found is None:
            found = self._make(key)
            self._clients[key] = found
        return found

    def _make(self, kind: ProviderKind) -> CloudAPIClient:
        s = self._settings
        cls, url = CloudAPIClient, s.whatsapp_graph_url
        if kind is ProviderKind.emulator:
            if s.emulator_url is None:
                raise ProviderOff("the emulator is off on this server (AISOULE_EMULATOR)")
            cls, url = SandboxProvider, s.emulator_url
        return cls(
            base_url=url,
            version=s.whatsapp_graph_version,
            pool_limit=s.whatsapp_http_pool_limit,
            connect_timeout=s.whatsapp_connect_timeout,
            read_timeout=s.whatsapp_read_timeout,
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
