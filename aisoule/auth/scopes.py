"""API key scopes: minimal permissions, as seed 000 asks."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    contacts_read = "contacts:read"
    contacts_write = "contacts:write"
    messages_send = "messages:send"
    templates_read = "templates:read"
    templates_write = "templates:write"
    campaigns_read = "campaigns:read"
    campaigns_write = "campaigns:write"
    accounts_read = "accounts:read"
    accounts_write = "accounts:write"
    keys_manage = "keys:manage"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)
# A key created without scopes gets everything but the power to manage keys.
DEFAULT_KEY_SCOPES: tuple[str, ...] = tuple(s.value for s in Scope if s is not Scope.keys_manage)
