"""A delivery's bytes to events: the JSON body, cleaned of what the database cannot hold, split
into one row per event (inbound message, status, template review, anything else whole), each with
the key that makes a redelivery a no-op.

Pure functions: no session, no I/O, so the signature check can parse before it trusts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from aisoule.exceptions import AisouleError

MESSAGE, STATUS, TEMPLATE, OTHER = "message", "status", "template", "other"
KEY_MAX = 200

# NUL, or a lone surrogate, written as a JSON escape: neither PostgreSQL's jsonb and text nor
# UTF-8 can hold them.
SUSPECT = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]")


def parse(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses lone surrogates (\ud800), which Python's own parser reads; the events
        # are cleaned of them before they are stored (see clean).
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise AisouleError(
                "Body is not valid JSON", status_code=400, code="invalid_json"
            ) from None
    if not isinstance(body, dict):
        raise AisouleError("Body must be a JSON object", status_code=400, code="invalid_json")
    return body


def clean(value: Any) -> tuple[Any, bool]:
    """``value`` without NUL characters and with lone surrogates replaced (U+FFFD), in keys and
    strings at any depth; and whether anything changed."""
    if isinstance(value, str):
        out = value.replace("\x00", "")
        try:
            out.encode()
        except UnicodeEncodeError:
            out = out.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return out, out != value
    if isinstance(value, list):
        items = [clean(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        changed = False
        out_d: dict[str, Any] = {}
        for k, v in value.items():
            ck, kc = clean(k)
            cv, vc = clean(v)
            out_d[ck] = cv
            changed = changed or kc or vc
        return out_d, changed
    return value, False


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text[:64] if text else None


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _ts(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def at(ts: Any, default: datetime) -> datetime:
    """Meta's Unix timestamp as a datetime; ``default`` when it is missing or out of range."""
    value = _ts(ts)
    if value is None:
        return default
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return default


def event_key(key: str) -> str:
    """``key`` within the column's length: a long one keeps its start and a hash of the whole."""
    if len(key) <= KEY_MAX:
        return key
    return key[: KEY_MAX - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()


def events(raw: bytes, body: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The delivery's events. When its bytes hold NUL or a lone surrogate, they are split from the
    cleaned body and each keeps the signed bytes beside (``raw``)."""
    found = split(body, now)
    if SUSPECT.search(raw):
        cleaned, changed = clean(body)
        if changed:
            found = [{**e, "raw": raw} for e in split(cleaned, now)]
    return found


def split(body: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One row per event: inbound messages, statuses, template reviews, and anything else whole."""
    rows: dict[str, dict[str, Any]] = {}

    def add(
        key: str,
        kind: str,
        payload: dict[str, Any],
        pnid: str | None = None,
        waba_id: str | None = None,
    ) -> None:
        key = event_key(key)
        if key not in rows:
            rows[key] = {
                "key": key,
                "kind": kind,
                "phone_number_id": pnid,
                "waba_id": waba_id,
                "payload": payload,
                "raw": None,
                "received_at": now,
                "attempts": 0,
            }

    def other(value: Any, waba_id: str | None = None, entry_time: Any = None) -> None:
        add(
            f"other:{_digest(value)}",
            OTHER,
            {"value": value, "ts": _ts(entry_time)},
            waba_id=waba_id,
        )

    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        other(body)
    for entry in _list(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            other(entry, _str(entry.get("id")) if isinstance(entry, dict) else None)
            continue
        waba_id = _str(entry.get("id"))
        entry_time = entry.get("time")
        for change in entry["changes"]:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                other(change, waba_id, entry_time)
                continue
            field, value = change.get("field"), change["value"]
            if field == "messages":
                if not _split_messages(value, waba_id, add):
                    other(change, waba_id, entry_time)
            elif field == "message_template_status_update" and value.get("event"):
                when = _str(entry_time) or _digest(value)
                add(
                    f"template:{_str(value.get('message_template_id'))}:{value['event']}:{when}",
                    TEMPLATE,
                    {"field": field, "value": value, "ts": _ts(entry_time)},
                    waba_id=waba_id,
                )
            else:
                other(change, waba_id, entry_time)
    return list(rows.values())


def _split_messages(value: dict[str, Any], waba_id: str | None, add: Callable[..., None]) -> bool:
    metadata = as_dict(value.get("metadata"))
    pnid = _str(metadata.get("phone_number_id"))
    contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]
    found = False
    for msg in _list(value.get("messages")):
        if not isinstance(msg, dict) or not _str(msg.get("id")) or not _str(msg.get("from")):
            continue
        contact = next((c for c in contacts if c.get("wa_id") == msg["from"]), None)
        if contact is None and len(contacts) == 1:
            contact = contacts[0]
        payload = {
            "metadata": metadata,
            "contact": contact,
            "message": msg,
            "ts": _ts(msg.get("timestamp")),
        }
        add(f"message:{msg['id']}", MESSAGE, payload, pnid, waba_id)
        found = True
    for item in _list(value.get("statuses")):
        if not isinstance(item, dict) or not _str(item.get("id")) or not _str(item.get("status")):
            continue
        payload = {"metadata": metadata, "status": item, "ts": _ts(item.get("timestamp"))}
        add(f"status:{item['id']}:{item['status']}", STATUS, payload, pnid, waba_id)
        found = True
    return found
