"""Sandboxed webhook bodies: JSON text with ${name} placeholders, nothing that can run code.

A placeholder is an event field (`id`, `kind`, `key`, `title`, `severity`, `status`, `job_type`,
`resolves`) or a top-level key of the event's JSON body (`${client}`, `${log}`...). Each value is
inserted JSON-encoded (strings quoted and escaped, lists as arrays), so the template decides the
shape and the values can never break out of it; an unknown name becomes null.
"""

import json
import string
from collections.abc import Mapping
from typing import Any

from exporter.tickets.events.models import Event

FIELDS = ("id", "kind", "key", "title", "severity", "status", "job_type", "resolves")


class _Values(dict[str, str]):
    """The JSON text of each value; names the event does not have are null."""

    def __missing__(self, name: str) -> str:
        return "null"


def values(event: Event) -> Mapping[str, str]:
    """Return the JSON-encoded value of every name a template may use."""
    raw: dict[str, Any] = {**event.body, **{f: getattr(event, f) for f in FIELDS}}
    return _Values({name: json.dumps(value, default=str) for name, value in raw.items()})


def render(template: str, event: Event) -> str:
    """Fill a template for one event (string.Template: substitution only, no expressions)."""
    return string.Template(template).substitute(values(event))


def check(template: str) -> str:
    """Reject a template that is not valid JSON once filled, naming the problem."""
    try:
        filled = string.Template(template).substitute(_Values())
    except ValueError as exc:
        raise ValueError(f"bad placeholder: {exc}") from None
    try:
        json.loads(filled)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON once filled: {exc.msg} at line {exc.lineno}") from None
    return template
