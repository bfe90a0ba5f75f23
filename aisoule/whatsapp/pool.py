"""One pooled ``CloudAPIClient`` per Graph API base URL (Meta, or an emulator), per process."""

from __future__ import annotations

from aisoule.config import Settings
from aisoule.whatsapp.cloud.client import CloudAPIClient


class ProviderPool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, CloudAPIClient] = {}

    def client(self, base_url: str) -> CloudAPIClient:
        found = self._clients.get(base_url)
        if found is None:
            s = self._settings
            found = CloudAPIClient(
                base_url=base_url,
                version=s.whatsapp_graph_version,
                pool_limit=s.whatsapp_http_pool_limit,
                connect_timeout=s.whatsapp_connect_timeout,
                read_timeout=s.whatsapp_read_timeout,
            )
            self._clients[base_url] = found
        return found

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
