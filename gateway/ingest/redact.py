"""The one place credentials are removed from text bound for logs, the API and errors."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote

# scheme://userinfo@ — the userinfo ends at the last "@" before the path (RFC 3986 §3.2).
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s?#\"'<>]*@")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)[^\r\n]+")
# A viewing token in a URL's query (``?token=``), and a token anywhere by its prefix
# (gateway/access/tokens.py): URLs reach logs in request lines and Referer headers.
_TOKEN_PARAM = re.compile(r"(?i)([?&;]token=)[^&#\s\"'<>]+")
_TOKEN = re.compile(r"\bgwt1\.[A-Za-z0-9_.-]+")

#: What a removed secret is replaced with.
MASK = "***"


class Redactor:
    """Remove URL userinfo, Authorization values and registered secrets from text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        """Add secret values (and their URL-encoded forms) to remove from now on."""
        with self._lock:
            values = set(self._secrets)
            for secret in secrets:
                if secret:
                    values.update({secret, quote(secret, safe=""), quote(secret)})
            # Longest first, so a secret containing another is removed whole.
            self._secrets = tuple(sorted(values, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """Return ``text`` without credentials."""
        text = _USERINFO.sub(r"\1", text)
        text = _AUTH_HEADER.sub(r"\1" + MASK, text)
        text = _TOKEN_PARAM.sub(r"\1" + MASK, text)
        text = _TOKEN.sub(MASK, text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


# One process-wide redactor: log records, API output and exception text from any
# module must all pass through the same secret list, without threading it everywhere.
_REDACTOR = Redactor()


def register_secrets(secrets: Iterable[str]) -> None:
    """Register secret values that ``redact`` removes from now on."""
    _REDACTOR.register(secrets)


def redact(text: str) -> str:
    """Return ``text`` without URL userinfo, Authorization values or registered secrets."""
    return _REDACTOR(text)


class RedactingFilter(logging.Filter):
    """Pass every record through ``redact``: its message, arguments and traceback.

    Put on a handler (``install_redaction``), it sees the records of every logger,
    aiohttp's access and server logs included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's text with its redacted form; keep the record."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Put a ``RedactingFilter`` on every handler of ``logger`` (the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
