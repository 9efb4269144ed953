"""E-mail over SMTP (STARTTLS, implicit TLS or none; optional login), text and HTML parts.

One thread per ticket: the first mail's Message-ID is derived from the ticket, and every later mail
about it answers that id with In-Reply-To and References, under the same subject, so mail clients
show one conversation. Every Message-ID is stable for its queued message: a mail sent again after a
crash carries the id of the first copy.
"""

from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import RejectedByChannel, TransientChannelError, shorten
from .message import Message, Receipt


class EmailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["email"]
    host: str = Field("", description="the SMTP server; empty: messages are rendered, not sent")
    port: int | None = Field(None, ge=1, le=65535, description="default: 587 starttls, 465 ssl, 25 none")
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = Field(min_length=3)
    to: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(15.0, gt=0)
    verify_tls: bool = Field(True, description="false only for a test server with a self-signed certificate")
    language: str | None = None

    @property
    def can_send(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.security]

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2].strip("> ") or "escalator.invalid"


def thread_id(settings: EmailSettings, message: Message) -> str:
    """The Message-ID of the first mail about a ticket: the same ticket always gives the same id."""
    digest = hashlib.sha256(f"{message.platform}\0{message.ticket_id}".encode()).hexdigest()[:20]
    return f"<ticket.{digest}@{settings.domain}>"


def message_id(settings: EmailSettings, message: Message) -> str:
    """The Message-ID of a later mail: the queued message's own id, so a mail sent again after a crash
    between the server's 250 and the outbox's record is the same mail to every client that dedupes."""
    return f"<msg.{message.id}@{settings.domain}>"


def _one_line(value: str) -> str:
    """A header's value from a ticket's text: a title may hold a line break (set through a platform's
    API), which the e-mail package refuses in a header, failing the mail; runs of white space become one."""
    return " ".join(value.split())


def render(settings: EmailSettings, message: Message, thread: str | None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = ", ".join(settings.to)
    mail["Subject"] = ("Re: " if thread else "") + _one_line(message.headline)
    mail["Date"] = formatdate(localtime=False)
    if thread:
        mail["Message-ID"] = message_id(settings, message)
        mail["In-Reply-To"] = thread
        mail["References"] = thread
    else:
        mail["Message-ID"] = thread_id(settings, message)
    mail["Content-Language"] = message.language
    mail["X-Escalator-Ticket"] = _one_line(f"{message.platform}:{message.ticket_key}")
    facts = "".join(f"{k}: {v}\n" for k, v in message.facts)
    link = f"\n{message.ticket_url}\n" if message.ticket_url else ""
    mail.set_content(f"{message.text}\n\n{facts}{link}")
    rows = "".join(
        f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in message.facts
    )
    anchor = (
        f'<p><a href="{html.escape(message.ticket_url, quote=True)}">'
        f"{html.escape(message.ticket_key)}</a></p>"
        if message.ticket_url
        else ""
    )
    body = html.escape(message.text).replace("\n", "<br>\n")
    mail.add_alternative(
        f"<html><body><h3>{html.escape(message.headline)}</h3><p>{body}</p>"
        f"<table>{rows}</table>{anchor}</body></html>",
        subtype="html",
    )
    return mail


class EmailChannel:
    def __init__(self, settings: EmailSettings):
        self.settings = settings

    def send(self, message: Message, thread: str | None) -> Receipt:
        s = self.settings
        mail = render(s, message, thread)
        context = ssl.create_default_context()
        if not s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            if s.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.effective_port, timeout=s.timeout_seconds, context=context
                )
            else:
                smtp = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout_seconds)
            with smtp:
                if s.security == "starttls":
                    smtp.starttls(context=context)
                if s.username:
                    smtp.login(s.username, s.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise RejectedByChannel(
                f"email: login refused: {_answer(exc)}", status=exc.smtp_code, answer=_answer(exc)
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. a login configured, the server offers none
            raise RejectedByChannel(f"email: {exc}", answer=str(exc)) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            answer = shorten(
                "; ".join(f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items())
            )
            raise RejectedByChannel(f"email: every recipient refused: {answer}", answer=answer) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx is the server's "try later"; 5xx a permanent refusal.
            kind = TransientChannelError if 400 <= exc.smtp_code < 500 else RejectedByChannel
            raise kind(f"email: {_answer(exc)}", status=exc.smtp_code, answer=_answer(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(
                f"email: cannot deliver to {s.host}:{s.effective_port}: {exc}"
            ) from exc
        answer = "250 accepted" + (f"; refused: {', '.join(refused)}" if refused else "")
        return Receipt(
            status=250,
            answer=answer,
            thread=thread or mail["Message-ID"],
            details={"message_id": mail["Message-ID"]},
        )


def _answer(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    )
    return shorten(f"{exc.smtp_code} {text}")
