"""Sending one plain-text mail through the configured SMTP server (stdlib smtplib, in a thread)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage


@dataclass(frozen=True, slots=True)
class SMTP:
    host: str
    port: int
    username: str | None
    password: str | None
    sender: str
    security: str  # starttls | tls | none
    timeout: float = 10.0


def _send(cfg: SMTP, to: str, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = cfg.sender, to, subject
    msg.set_content(body)
    context = ssl.create_default_context()
    if cfg.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            cfg.host, cfg.port, timeout=cfg.timeout, context=context
        )
    else:
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    with client:
        if cfg.security == "starttls":
            client.starttls(context=context)
        if cfg.username and cfg.password:
            client.login(cfg.username, cfg.password)
        client.send_message(msg)


async def send(cfg: SMTP, to: str, subject: str, body: str) -> None:
    """Network I/O: call it after the transaction committed (queue.after_commit_call)."""
    await asyncio.to_thread(_send, cfg, to, subject, body)
