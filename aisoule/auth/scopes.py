"""API key scopes: minimal permissions, as seed 000 asks; a member's role grants a set of them."""

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
    conversations_read = "conversations:read"
    conversations_write = "conversations:write"
    workspace_manage = "workspace:manage"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)
# A key created without scopes gets everything but the power to manage keys and the workspace
# (its members and settings): those two are asked for by name.
_NOT_BY_DEFAULT = (Scope.keys_manage, Scope.workspace_manage)
DEFAULT_KEY_SCOPES: tuple[str, ...] = tuple(s.value for s in Scope if s not in _NOT_BY_DEFAULT)

ROLES = ("owner", "admin", "agent")
# What a logged-in member may do, by role. An agent answers customers (conversations, contacts,
# sending, reading templates, campaigns and numbers) but manages no numbers, keys, members,
# settings, templates or campaigns. Owner-only actions beyond scopes (the audit log, owners'
# memberships) are checked where they are.
AGENT_SCOPES: frozenset[str] = frozenset(
    s.value
    for s in (
        Scope.contacts_read,
        Scope.contacts_write,
        Scope.messages_send,
        Scope.templates_read,
        Scope.campaigns_read,
        Scope.accounts_read,
        Scope.conversations_read,
        Scope.conversations_write,
    )
)
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": ALL_SCOPES,
    "admin": ALL_SCOPES,
    "agent": AGENT_SCOPES,
}
