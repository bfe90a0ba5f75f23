"""Message statuses and their order. A status only ever moves forward: a late ``delivered`` never
overwrites ``read``; ``failed`` ends a message that Meta had not yet delivered."""

from __future__ import annotations

QUEUED = "queued"
SENDING = "sending"
UNKNOWN = "unknown"  # the request to Meta left but no answer came; webhooks will tell
ACCEPTED = "accepted"  # Meta took it (wamid known)
SENT = "sent"
DELIVERED = "delivered"
READ = "read"
FAILED = "failed"
RECEIVED = "received"  # inbound

RANK: dict[str, int] = {
    QUEUED: 0,
    SENDING: 1,
    UNKNOWN: 2,
    ACCEPTED: 3,
    SENT: 4,
    DELIVERED: 5,
    READ: 6,
    FAILED: 7,
    RECEIVED: 0,
}

# Meta's webhook statuses we apply. ``failed`` may come after ``sent`` (e.g. 131047 reported
# asynchronously) but not after delivered/read.
WEBHOOK_STATUSES = frozenset({SENT, DELIVERED, READ, FAILED})
FAILED_BEFORE_RANK = RANK[DELIVERED]


def moves_forward(current: str, new: str) -> bool:
    """Whether ``new`` replaces ``current`` as the message's status."""
    if current == FAILED:
        return False
    if new == FAILED:
        return RANK.get(current, 0) < FAILED_BEFORE_RANK
    return RANK.get(new, 0) > RANK.get(current, 0)
