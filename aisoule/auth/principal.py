from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user through a session cookie, or an API key. Always one workspace."""

    workspace_id: uuid.UUID
    via: Literal["session", "api_key"]
    scopes: frozenset[str]
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    session_token_hash: str | None = None
    csrf_token: str | None = field(default=None, repr=False)
    # The member's role in this workspace (owner | admin | agent); None for an API key.
    role: str | None = None
    # Rate-limit overrides of the key or its workspace (None: the server's defaults).
    rate_limit_per_minute: int | None = None
    rate_limit_per_second: int | None = None

    @property
    def rate_identity(self) -> str:
        return f"key:{self.api_key_id}" if self.via == "api_key" else f"user:{self.user_id}"
