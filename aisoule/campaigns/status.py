"""A campaign's statuses, what moves it between them, and its recipients' statuses.

    draft ──start──▶ running ◀──resume── paused
      │                │  └────pause────▶  │
      └─schedule─▶ scheduled ─(its time)─▶ running
                       │                   │
    running ──(every recipient settled)──▶ completed
    draft | scheduled | running | paused ──cancel──▶ cancelled
    scheduled ──(its time passed by more than the stale window while the server was down)──▶ failed

The engine pauses a running campaign by itself, with a reason (``PAUSE_REASONS``); a person
resumes it. ``PUT`` edits a campaign only while it is draft, scheduled or paused.
"""

from __future__ import annotations

DRAFT = "draft"
SCHEDULED = "scheduled"
RUNNING = "running"
PAUSED = "paused"
COMPLETED = "completed"
CANCELLED = "cancelled"
FAILED = "failed"

ALL = (DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED, FAILED)
EDITABLE = frozenset({DRAFT, SCHEDULED, PAUSED})
STARTABLE = frozenset({DRAFT, SCHEDULED})
CANCELLABLE = frozenset({DRAFT, SCHEDULED, RUNNING, PAUSED})
FINISHED = frozenset({COMPLETED, CANCELLED, FAILED})
# Deletable: anything not sending (a running or paused campaign is cancelled first).
DELETABLE = frozenset({DRAFT, SCHEDULED, COMPLETED, CANCELLED, FAILED})

# Why the engine paused or failed a campaign (status_reason); a person's pause has none.
ACCOUNT_ERROR = "account_error"  # token expired, account locked, 131031, ...
TEMPLATE_NOT_APPROVED = "template_not_approved"  # Meta paused or disabled the template
FAILURE_RATE = "failure_rate"  # more than the configured share failed in the window
STALE_SCHEDULE = "stale_schedule"  # its time passed too long ago while the server was down
PAUSE_REASONS = (ACCOUNT_ERROR, TEMPLATE_NOT_APPROVED, FAILURE_RATE)

# A recipient's status. Stats count each recipient once, by its furthest state; "queued" is
# shown as "pending" (not yet answered by Meta).
R_PENDING = "pending"
R_QUEUED = "queued"
R_SENT = "sent"
R_DELIVERED = "delivered"
R_READ = "read"
R_FAILED = "failed"
R_UNKNOWN = "unknown"
R_SKIPPED = "skipped"
RECIPIENT_STATUSES = (
    R_PENDING,
    R_QUEUED,
    R_SENT,
    R_DELIVERED,
    R_READ,
    R_FAILED,
    R_UNKNOWN,
    R_SKIPPED,
)
STAT_BUCKETS = ("skipped", "pending", "sent", "delivered", "read", "failed", "unknown")

# Why a recipient was skipped (never sent).
SKIP_OPTED_OUT = "opted_out"
SKIP_MISSING_VARIABLE = "missing_variable"
SKIP_INVALID_PHONE = "invalid_phone"
SKIP_CONTACT_DELETED = "contact_deleted"
SKIP_CANCELLED = "cancelled"  # the campaign was cancelled before this recipient's turn
