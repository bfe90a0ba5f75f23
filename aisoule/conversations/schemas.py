"""Conversation representations (none on the API yet: the inbox will add them)."""

from __future__ import annotations
