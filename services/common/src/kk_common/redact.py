"""Every form a secret can take in a log line, an error or a health problem, redacted.

Secrets are never logged on purpose; this is the second line of defence for text that
quotes one by accident, such as an HTTP library's error naming an illegal header value. The
same secret then appears escaped (``'key\\r\\n'`` in a repr, ``\\u0000`` in JSON), encoded
(base64 in an ``Authorization: Basic`` header, percent-encoding in a URL), or both, since a
log line is JSON: `Redactor` replaces each of those forms, longest first.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["REDACTED", "Redactor", "secret_forms"]

REDACTED = "[REDACTED]"
_SHORTEST_FORM = 4
"""Shorter secrets or forms would redact ordinary text; no real key is this short."""


def _encodings(secret: str) -> set[str]:
    raw = secret.encode("utf-8")
    b64 = base64.b64encode(raw).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(raw).decode("ascii")
    return {
        secret,
        repr(secret)[1:-1],
        repr(raw)[2:-1],
        b64,
        b64.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
        quote(secret, safe=""),
    }


def secret_forms(secret: str) -> set[str]:
    """``secret`` as written, escaped and encoded, and each of those as it reads inside a
    JSON string."""
    if len(secret) < _SHORTEST_FORM:
        return set()
    forms = set()
    for form in _encodings(secret):
        forms.add(form)
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= _SHORTEST_FORM}


class Redactor:
    """Replaces every form of the registered secrets in a text by ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = set().union(*(secret_forms(s) for s in secrets if s))
        # Longest first, so a form containing another is redacted whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text
