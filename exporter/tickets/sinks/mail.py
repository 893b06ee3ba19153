"""E-mail over SMTP (smtplib): one message per event, a Message-ID derived from the event id.

Ticket systems fed by mail (Request Tracker, Znuny/OTRS, Zammad, osTicket, Jira Service
Management) deduplicate and thread by Message-ID, In-Reply-To and References: a redelivered
event carries the same Message-ID, and every event after the first of its ticket key answers
that first message, so a resolution or a re-fire lands in the same ticket.
"""

import email.policy
import hashlib
import html
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from exporter import __version__
from exporter.tickets.config import EmailSinkConfig
from exporter.tickets.events.models import Event
from exporter.tickets.sinks.base import PermanentError, RetryableError
from exporter.tickets.sinks.tickets import cut, describe

FIELD = re.compile(r"^([a-z_]+): (.*)$")
# Long ids stay on one header line (RFC 5322 allows 998): a folded X-Bacula-Event-Id would
# come back with a leading blank from some parsers.
POLICY = email.policy.SMTP.clone(max_line_length=998)


def message_id(event_id: str, domain: str) -> str:
    """Return the Message-ID of an event: the same for every delivery of it."""
    # Hashed: an event id holds ':' and other characters a Message-ID may not.
    return f"<{hashlib.sha256(event_id.encode()).hexdigest()[:40]}@{domain}>"


def render_html(event: Event, text: str) -> str:
    """Return the HTML part: the text's `name: value` lines as a table, the rest as text."""
    rows: list[str] = []
    rest: list[str] = []
    for line in text.splitlines():
        found = FIELD.match(line)
        if found and not rest:
            rows.append(f"<tr><th align=\"left\">{html.escape(found[1])}</th>"
                        f"<td>{html.escape(found[2])}</td></tr>")
        else:
            rest.append(line)
    return (f"<html><body><h3>{html.escape(event.title)}</h3><table>{''.join(rows)}</table>"
            f"<pre>{html.escape(chr(10).join(rest).strip())}</pre></body></html>")


def build_message(cfg: EmailSinkConfig, event: Event) -> EmailMessage:
    """Return the message of an event, threaded to the first message of its ticket key."""
    domain = cfg.message_id_domain or cfg.sender.rsplit("@", 1)[1]
    message = EmailMessage(policy=POLICY)
    message["From"] = cfg.sender
    message["To"] = ", ".join(cfg.to)
    if cfg.cc:
        message["Cc"] = ", ".join(cfg.cc)
    message["Subject"] = cut(event.title, 250)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(event.id, domain)
    if event.thread and event.thread != event.id:
        first = message_id(event.thread, domain)
        message["In-Reply-To"] = first
        message["References"] = first
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    message["X-Bacula-Event-Id"] = event.id
    message["X-Bacula-Ticket-Key"] = event.key
    message["X-Mailer"] = f"bacula-exporter/{__version__}"
    text = describe(event)
    message.set_content(f"{event.title}\n\n{text}\n")
    if cfg.html:
        message.add_alternative(render_html(event, text), subtype="html")
    return message


class EmailSink:
    """Sends each event as one message; 5xx refusals are final, the rest is retried."""

    def __init__(self, cfg: EmailSinkConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg

    def _connect(self) -> smtplib.SMTP:
        """Open an SMTP session with the configured security, logged in if asked."""
        cfg = self.cfg
        context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        smtp: smtplib.SMTP
        if cfg.security == "tls":
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.smtp_port(), timeout=cfg.timeout,
                                    context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.smtp_port(), timeout=cfg.timeout)
        try:
            if cfg.security == "starttls":
                smtp.starttls(context=context)
            password = cfg.password()
            if cfg.username is not None and password is not None:
                smtp.login(cfg.username, password.get())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def deliver(self, event: Event) -> None:
        """Send the event's message to `to` and `cc`."""
        what = f"email {self.name}"
        message = build_message(self.cfg, event)
        try:
            with self._connect() as smtp:
                smtp.send_message(message, self.cfg.sender, [*self.cfg.to, *self.cfg.cc])
        except smtplib.SMTPAuthenticationError as exc:
            # A rotated password file fixes it without a restart: keep trying.
            raise RetryableError(f"{what}: login refused ({exc.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            error = f"{what}: recipients refused ({', '.join(map(str, codes))})"
            raise (PermanentError if all(c >= 500 for c in codes) else RetryableError)(
                error) from None
        except smtplib.SMTPResponseException as exc:
            error = f"{what}: SMTP {exc.smtp_code}"
            raise (PermanentError if exc.smtp_code >= 500 else RetryableError)(error) from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise RetryableError(f"{what}: {type(exc).__name__}") from None

    def close(self) -> None:
        """Nothing held between deliveries."""
