"""All tables, imported here so that Alembic and the metadata see every one."""

from aisoule.models.api_key import APIKey
from aisoule.models.api_key_usage import APIKeyUsage
from aisoule.models.audit_event import AuditEvent
from aisoule.models.auth_session import AuthSession
from aisoule.models.campaign import Campaign, CampaignCounter, CampaignRecipient
from aisoule.models.contact import Contact, ContactCount, ContactNumber, ContactTag
from aisoule.models.idempotency_key import IdempotencyKey
from aisoule.models.inbox import (
    CannedResponse,
    ConversationEvent,
    ConversationLabel,
    ConversationRead,
    InboxMember,
    InboxSettings,
    Invitation,
    LiveEvent,
    LiveEventCounter,
    Team,
    TeamMember,
)
from aisoule.models.message import (
    ContactWhatsApp,
    Conversation,
    Message,
    MessageStatusEvent,
    WebhookEvent,
)
from aisoule.models.stage import Stage
from aisoule.models.template import MessageTemplate
from aisoule.models.user import User, WorkspaceMember
from aisoule.models.whatsapp_account import WhatsAppAccount
from aisoule.models.workspace import Workspace

__all__ = [
    "APIKey",
    "APIKeyUsage",
    "AuditEvent",
    "AuthSession",
    "Campaign",
    "CampaignCounter",
    "CampaignRecipient",
    "CannedResponse",
    "Contact",
    "ContactCount",
    "ContactNumber",
    "ContactTag",
    "ContactWhatsApp",
    "Conversation",
    "ConversationEvent",
    "ConversationLabel",
    "ConversationRead",
    "IdempotencyKey",
    "InboxMember",
    "InboxSettings",
    "Invitation",
    "LiveEvent",
    "LiveEventCounter",
    "Message",
    "MessageStatusEvent",
    "MessageTemplate",
    "Stage",
    "Team",
    "TeamMember",
    "User",
    "WebhookEvent",
    "WhatsAppAccount",
    "Workspace",
    "WorkspaceMember",
]
