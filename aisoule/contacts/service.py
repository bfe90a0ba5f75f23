"""Contacts: one core under both API surfaces. Totals come from counters kept in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.contacts.repository import ConsentRepository, ContactRepository, Row, counts_of
from aisoule.contacts.schemas import (
    ContactCreateApi,
    ContactRef,
    ContactUpdateApi,
    ContactUpsertV1,
    parse_v1_id,
    split_name,
)
from aisoule.exceptions import Conflict, NotFound, ValidationFailed
from aisoule.kit.ids import parse_uuid
from aisoule.kit.time import utcnow
from aisoule.workspaces import service as workspace_service

CONTACT_NOT_FOUND = "Contact not found"


async def list_contacts(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    tag: str | None = None,
    stage: str | None = None,
    q: str | None = None,
) -> tuple[Sequence[Row], int]:
    repo = ContactRepository(session)
    if stage is not None:
        stage = await workspace_service.resolve_stage(session, workspace_id, stage)
    if q is None and (tag is None or stage is None):
        # The common lists: page and counter total in one statement.
        return await repo.page_with_total(
            workspace_id, limit=limit, offset=offset, tag=tag, stage=stage
        )
    rows = await repo.list_page(workspace_id, limit=limit, offset=offset, tag=tag, stage=stage, q=q)
    return rows, await repo.count_exact(workspace_id, tag=tag, stage=stage, q=q)


@dataclass(frozen=True, slots=True)
class BrowsePage:
    """A keyset page: its rows, the cursors of the pages either side (None: no such page), and
    the exact total when the counters know it (all contacts, one tag or one stage)."""

    rows: Sequence[Row]
    next_after: int | None
    prev_before: int | None
    total: int | None


async def browse(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    limit: int,
    after: int | None = None,
    before: int | None = None,
    tag: str | None = None,
    stage: str | None = None,
    q: str | None = None,
    field: tuple[str, str] | None = None,
) -> BrowsePage:
    """The dashboard's contact list: the same filters as list_contacts plus one custom field,
    paged by id (keyset), so the hundredth page costs what the first does."""
    repo = ContactRepository(session)
    if stage is not None:
        stage = await workspace_service.resolve_stage(session, workspace_id, stage)
    rows, more = await repo.browse(
        workspace_id,
        limit=limit,
        after=after,
        before=before,
        tag=tag,
        stage=stage,
        q=q,
        field=field,
    )
    total: int | None = None
    if q is None and field is None and (tag is None or stage is None):
        kind, key = ("tag", tag) if tag else ("stage", stage) if stage else ("all", "")
        total = await repo.counted(workspace_id, kind, key or "")
    going_back = before is not None
    first_id = rows[0]["id"] if rows else None
    last_id = rows[-1]["id"] if rows else None
    next_after = last_id if (more and not going_back) or (going_back and rows) else None
    prev_before = first_id if (more and going_back) or (after is not None and rows) else None
    return BrowsePage(rows, next_after, prev_before, total)


MAX_BULK = 500


def _bulk_ids(contact_ids: Sequence[str]) -> list[str]:
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        raise ValidationFailed("ids: select at least one contact", field="ids")
    if len(ids) > MAX_BULK:
        raise ValidationFailed(f"ids: at most {MAX_BULK} contacts at once", field="ids")
    return ids


async def bulk_tag(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Sequence[str], tag: str
) -> int:
    """Add ``tag`` to each selected contact of this workspace (ids of others: not found, 404).
    One contact at a time through the same update as PUT, so the counters stay exact."""
    tag = tag.strip()
    if not tag or len(tag) > 64:
        raise ValidationFailed("tag: give a tag of 1 to 64 characters", field="tag")
    changed = 0
    for contact_id in _bulk_ids(contact_ids):
        row = await get_by_uuid(session, workspace_id, contact_id)
        if tag in row["tags"]:
            continue
        data = ContactUpdateApi.model_validate({"tags": [*row["tags"], tag]})
        await update_api(session, workspace_id, contact_id, data)
        changed += 1
    return changed


async def bulk_delete(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Sequence[str]
) -> int:
    """Delete each selected contact of this workspace (all or nothing: one unknown id is a 404)."""
    ids = _bulk_ids(contact_ids)
    for contact_id in ids:
        await delete_by_uuid(session, workspace_id, contact_id)
    return len(ids)


async def get_by_uuid(session: AsyncSession, workspace_id: uuid.UUID, contact_id: str) -> Row:
    parsed = parse_uuid(contact_id)
    row = (
        None
        if parsed is None
        else await ContactRepository(session).get_by_uuid(workspace_id, parsed)
    )
    if row is None:
        raise NotFound(CONTACT_NOT_FOUND, code="contact_not_found")
    return row


async def get_by_number(session: AsyncSession, workspace_id: uuid.UUID, number: int) -> Row:
    """The contact whose /v1 id is ``cnt_<number>`` in this workspace."""
    row = await ContactRepository(session).get_by_number(workspace_id, number)
    if row is None:
        raise NotFound(CONTACT_NOT_FOUND, code="contact_not_found")
    return row


def _merge_custom_fields(current: Mapping[Any, Any], incoming: Mapping[Any, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in incoming.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


async def _insert(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    phone: str,
    fields: dict[str, Any],
    *,
    in_transaction: bool = True,
) -> Row | None:
    stage = fields.get("stage")
    if stage is not None:
        stage = await workspace_service.resolve_stage(session, workspace_id, stage)
    now = utcnow()
    values = {
        "uuid": uuid.uuid4(),
        "workspace_id": workspace_id,
        "phone": phone,
        "first_name": fields.get("first_name"),
        "last_name": fields.get("last_name"),
        "email": fields.get("email"),
        "stage": stage,  # None: the workspace's first stage, which the insert itself reads
        "tags": fields.get("tags") or [],
        "custom_fields": _merge_custom_fields({}, fields.get("custom_fields") or {}),
        "created_at": now,
        "updated_at": now,
    }
    return await ContactRepository(session).insert_counted(
        values, fallback_stage=workspace_service.DEFAULT_STAGES[0], in_transaction=in_transaction
    )


async def _changes(
    session: AsyncSession, workspace_id: uuid.UUID, existing: Row, fields: dict[str, Any]
) -> dict[str, Any]:
    """What the sent fields change in ``existing`` (empty: nothing), with updated_at."""
    changes: dict[str, Any] = {}
    for key in ("phone", "first_name", "last_name", "email"):
        if key in fields and fields[key] != existing[key]:
            changes[key] = fields[key]
    if "stage" in fields:
        stage = await workspace_service.resolve_stage(session, workspace_id, fields["stage"])
        if stage != existing["stage"]:
            changes["stage"] = stage
    if "tags" in fields and fields["tags"] != existing["tags"]:
        changes["tags"] = fields["tags"]
    if "custom_fields" in fields:
        merged = _merge_custom_fields(existing["custom_fields"], fields["custom_fields"])
        if merged != existing["custom_fields"]:
            changes["custom_fields"] = merged
    if changes:
        changes["updated_at"] = utcnow()
    return changes


async def _apply(
    session: AsyncSession, workspace_id: uuid.UUID, existing: Row, fields: dict[str, Any]
) -> Row:
    """Apply the sent fields to a locked row; write nothing when nothing changes."""
    changes = await _changes(session, workspace_id, existing, fields)
    if not changes:
        return existing
    repo = ContactRepository(session)
    if "phone" in changes:
        try:
            async with session.begin_nested():
                row = await repo.update_counted(workspace_id, existing, changes)
        except IntegrityError:
            raise Conflict(
                "phone_number: another contact in this workspace has this phone number",
                field="phone_number",
            ) from None
    else:
        row = await repo.update_counted(workspace_id, existing, changes)
    assert row is not None  # the row is locked: the update cannot miss it
    return row


async def _upsert_versioned(
    session: AsyncSession, workspace_id: uuid.UUID, phone: str, fields: dict[str, Any]
) -> tuple[Row, bool] | None:
    """upsert_v1 without a row lock or a transaction of its own (PostgreSQL): read the contact
    and its row version; insert it, or update it only if that version is still current. Three
    round trips (key lookup included) instead of five with BEGIN, SELECT ... FOR UPDATE and COMMIT.
    None when another request wrote this contact in between: then nothing was written, and the
    caller does it the locking way (which always makes progress, however contended the row)."""
    repo = ContactRepository(session)
    existing = await repo.get_by_phone_versioned(workspace_id, phone)
    if existing is None:
        row = await _insert(session, workspace_id, phone, fields, in_transaction=False)
        return None if row is None else (row, True)
    changes = await _changes(session, workspace_id, existing, fields)
    if not changes:
        return existing, False
    row = await repo.update_counted(workspace_id, existing, changes, version=existing["version"])
    return None if row is None else (row, False)


async def upsert_v1(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    data: ContactUpsertV1,
    *,
    in_callers_transaction: bool = False,
) -> tuple[Row, bool]:
    """Create by phone, or update the contact with that phone: (row, created).

    The fast path (PostgreSQL) writes in autocommit when the session has not begun a
    transaction; ``in_callers_transaction=True`` keeps every write in the caller's transaction,
    so that its rollback takes the contact back too."""
    fields = data.model_dump(exclude_unset=True)
    phone = fields.pop("phone")
    repo = ContactRepository(session)
    if repo.versioned_updates and not in_callers_transaction:
        done = await _upsert_versioned(session, workspace_id, phone, fields)
        if done is not None:
            return done
    existing = await repo.get_by_phone(workspace_id, phone, for_update=True)
    if existing is None:
        row = await _insert(session, workspace_id, phone, fields)
        if row is not None:
            return row, True
        # Another request created it between our read and our insert: update that one.
        existing = await repo.get_by_phone(workspace_id, phone, for_update=True)
        if existing is None:  # pragma: no cover - deleted again in between
            raise Conflict("phone: the contact changed concurrently; retry", field="phone")
    return await _apply(session, workspace_id, existing, fields), False


def _api_fields(fields: dict[str, Any]) -> dict[str, Any]:
    if "name" in fields:
        if "first_name" in fields or "last_name" in fields:
            raise ValidationFailed(
                "name: send either name or first_name/last_name, not both", field="name"
            )
        fields["first_name"], fields["last_name"] = split_name(fields.pop("name"))
    if "phone_number" in fields:
        fields["phone"] = fields.pop("phone_number")
    return fields


async def create_api(session: AsyncSession, workspace_id: uuid.UUID, data: ContactCreateApi) -> Row:
    fields = _api_fields(data.model_dump(exclude_unset=True))
    phone = fields.pop("phone")
    row = await _insert(session, workspace_id, phone, fields)
    if row is None:
        raise Conflict(
            "phone_number: a contact with this phone number already exists", field="phone_number"
        )
    return row


async def update_api(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: str, data: ContactUpdateApi
) -> Row:
    parsed = parse_uuid(contact_id)
    repo = ContactRepository(session)
    existing = (
        None if parsed is None else await repo.get_by_uuid(workspace_id, parsed, for_update=True)
    )
    if existing is None:
        raise NotFound(CONTACT_NOT_FOUND, code="contact_not_found")
    return await _apply(
        session, workspace_id, existing, _api_fields(data.model_dump(exclude_unset=True))
    )


async def _delete(session: AsyncSession, workspace_id: uuid.UUID, existing: Row | None) -> Row:
    if existing is None:
        raise NotFound(CONTACT_NOT_FOUND, code="contact_not_found")
    repo = ContactRepository(session)
    await repo.delete(existing["id"])
    await repo.adjust_counts(workspace_id, counts_of(existing, -1))
    return existing


async def delete_by_uuid(session: AsyncSession, workspace_id: uuid.UUID, contact_id: str) -> Row:
    parsed = parse_uuid(contact_id)
    repo = ContactRepository(session)
    existing = (
        None if parsed is None else await repo.get_by_uuid(workspace_id, parsed, for_update=True)
    )
    return await _delete(session, workspace_id, existing)


async def delete_by_number(session: AsyncSession, workspace_id: uuid.UUID, number: int) -> Row:
    existing = await ContactRepository(session).get_by_number(workspace_id, number, for_update=True)
    return await _delete(session, workspace_id, existing)


# -- for messaging ------------------------------------------------------------------------------


async def find_by_phone(session: AsyncSession, workspace_id: uuid.UUID, phone: str) -> Row | None:
    """The contact with this E.164 phone, if any."""
    return await ContactRepository(session).get_by_phone(workspace_id, phone)


async def ensure_by_phone(
    session: AsyncSession, workspace_id: uuid.UUID, phone: str, profile_name: str | None = None
) -> tuple[Row, bool]:
    """The contact with this phone, created (named after the WhatsApp profile) when missing."""
    existing = await ContactRepository(session).get_by_phone(workspace_id, phone)
    if existing is not None:
        return existing, False
    fields: dict[str, Any] = {"phone": phone}
    if profile_name:
        first, last = split_name(profile_name[:400])
        fields |= {"first_name": first, "last_name": last}
    # The contact belongs to the caller's transaction: a refused send must leave no contact.
    return await upsert_v1(
        session, workspace_id, ContactUpsertV1.model_validate(fields), in_callers_transaction=True
    )


def _reference(reference: str) -> tuple[str, Any] | None:
    """(column, value) of an /api uuid or a /v1 ``cnt_`` id; None when it is neither."""
    number = parse_v1_id(reference)
    if number is not None:
        return "number", number
    parsed = parse_uuid(reference)
    return None if parsed is None else ("uuid", parsed)


Extra = Callable[[Any], Mapping[str, Any]]


async def find_recipient(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    reference: str | None = None,
    phone: str | None = None,
    extra: Extra | None = None,
) -> Row | None:
    """The contact named by ``reference`` (an /api uuid or a /v1 ``cnt_`` id) or ``phone``
    (E.164), with its consent (``opted_out_at``, ``opt_out_reason``) and the columns ``extra``
    makes from the contact id column (another domain's state, e.g. the conversation's window), in
    one statement: a sender's whole view of the recipient in one round trip."""
    if reference is not None:
        found = _reference(reference)
        if found is None:
            return None
        by, value = found
    else:
        assert phone is not None
        by, value = "phone", phone
    return await ContactRepository(session).with_consent(workspace_id, by, value, extra)


async def find_for_message(
    session: AsyncSession, workspace_id: uuid.UUID, reference: str
) -> Row | None:
    """A contact named by an /api uuid or a /v1 ``cnt_`` id (None when neither matches)."""
    found = _reference(reference)
    if found is None:
        return None
    by, value = found
    if by == "number":
        return await ContactRepository(session).get_by_number(workspace_id, value)
    return await ContactRepository(session).get_by_uuid(workspace_id, value)


async def refs(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Iterable[int | None]
) -> dict[int, ContactRef]:
    """What other domains' representations name a contact by (its uuid on /api, its number on
    /v1), by internal id; ids of no contact in this workspace (and None) are left out."""
    rows = await ContactRepository(session).refs_of(
        workspace_id, (i for i in contact_ids if i is not None)
    )
    return {r["id"]: ContactRef(uuid=r["uuid"], number=r["number"]) for r in rows}


# -- for campaigns ------------------------------------------------------------------------------


async def ids_for_references(
    session: AsyncSession, workspace_id: uuid.UUID, references: Sequence[str], *, v1: bool
) -> list[int | None]:
    """The internal id of each contact named by ``references`` (/api uuids, or /v1 ``cnt_``
    ids when ``v1``), None where one names no contact of this workspace; in the same order."""
    by = "number" if v1 else "uuid"
    parsed: list[Any] = [parse_v1_id(r) if v1 else parse_uuid(r) for r in references]
    found = await ContactRepository(session).ids_of(
        workspace_id, by, (p for p in parsed if p is not None)
    )
    return [None if p is None else found.get(p) for p in parsed]


async def audience_counts(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    conditions: Sequence[Any],
    missing: Any | None = None,
) -> tuple[int, int, int]:
    """Of this workspace's contacts matching ``conditions`` (SQL over contacts): how many, how
    many opted out of WhatsApp, and how many (not opted out) ``missing`` holds for."""
    return await ContactRepository(session).audience_counts(workspace_id, conditions, missing)


async def audience_sample(
    session: AsyncSession, workspace_id: uuid.UUID, conditions: Sequence[Any], limit: int = 5
) -> list[Row]:
    """The first contacts matching ``conditions``, with their consent (``opted_out_at``)."""
    return await ContactRepository(session).audience_sample(workspace_id, conditions, limit)


async def cards(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Iterable[int | None]
) -> dict[int, Row]:
    """The inbox's view of these contacts (refs, name, phone, consent), by internal id."""
    rows = await ContactRepository(session).cards_of(
        workspace_id, (i for i in contact_ids if i is not None)
    )
    return {r["id"]: r for r in rows}


# -- WhatsApp consent ---------------------------------------------------------------------------
# What WhatsApp told us about a contact: their wa_id and profile name, and whether they opted out
# (STOP, or Meta's 131050). Sending reads it (find_recipient); the inbound
# webhook and the send worker write it.


async def record_whatsapp_identity(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact_id: int,
    *,
    wa_id: str,
    profile_name: str | None,
) -> None:
    """The contact wrote in: remember their wa_id and profile name (consent unchanged)."""
    await ConsentRepository(session).upsert(
        workspace_id, contact_id, utcnow(), wa_id=wa_id, profile_name=profile_name
    )


async def opt_out(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: int, reason: str
) -> None:
    now = utcnow()
    await ConsentRepository(session).upsert(
        workspace_id, contact_id, now, opted_out_at=now, opt_out_reason=reason
    )


async def opt_in(session: AsyncSession, workspace_id: uuid.UUID, contact_id: int) -> None:
    await ConsentRepository(session).upsert(
        workspace_id, contact_id, utcnow(), opted_out_at=None, opt_out_reason=None
    )
