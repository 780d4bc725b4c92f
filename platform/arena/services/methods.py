"""The method a submission describes (name, short description, paper and code links): one validator for the web
form, the API and the CLI, and the rule that a phase may require a method name on final picks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from ..errors import Invalid

MAX_NAME, MAX_DESCRIPTION, MAX_URL = 100, 500, 500


@dataclass(frozen=True)
class Method:
    method_name: str | None = None
    method_description: str | None = None
    paper_url: str | None = None
    code_url: str | None = None

    def fields(self) -> dict:
        return asdict(self)


def _url(value: str | None, field: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > MAX_URL:
        raise Invalid(f"'{field}' has at most {MAX_URL} characters", field=field)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in value):
        raise Invalid(f"'{field}' must be an http:// or https:// address, not '{value[:80]}'", field=field)
    return value


def clean(
    name: str | None = None, description: str | None = None, paper_url: str | None = None, code_url: str | None = None
) -> Method:
    """The method fields as stored (blank is None); Invalid (400) naming the field that is too long or not a URL."""
    name = " ".join((name or "").split()) or None
    if name is not None and len(name) > MAX_NAME:
        raise Invalid(f"'method_name' has at most {MAX_NAME} characters", field="method_name")
    description = (description or "").strip() or None
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise Invalid(f"'method_description' has at most {MAX_DESCRIPTION} characters", field="method_description")
    return Method(name, description, _url(paper_url, "paper_url"), _url(code_url, "code_url"))


def view(sub) -> dict:
    """The method of a submission as the API and the boards show it (None when it names none)."""
    if not (sub.method_name or sub.method_description or sub.paper_url or sub.code_url):
        return None
    return {
        "name": sub.method_name,
        "description": sub.method_description,
        "paper_url": sub.paper_url,
        "code_url": sub.code_url,
    }
