"""Text from outside (file names, keys, driver messages) shown safely, on one line.

A file name may hold a newline (which would forge a log line of its own), terminal escapes
(``ESC]52;…`` writes the clipboard, ``ESC[2J`` clears the screen), bidi overrides that
reorder what an operator reads, or bytes that are not UTF-8. Everything that shows text
to a person — log lines, the live console, command output — passes it through here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

# C0 and C1 controls, DEL, zero-width and bidi controls, line/paragraph separators, BOM,
# and the lone surrogates that undecodable bytes of a file name turn into
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff"
    "\ud800-\udfff]"
)


def printable(text: str) -> str:
    """``text`` with each unsafe character written as an escape (``\\x1b``, ``\\u202e``)."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display_name(name: str) -> str:
    """A file name safe to encode: bytes that are not UTF-8 become U+FFFD."""
    if name.isascii():
        return name  # nearly every name, and already safe: no round trip
    return name.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")


# What a JSON encoder leaves raw but a terminal or an editor acts on: DEL and C1 controls
# (``\x9b`` is CSI), zero-width and bidi controls, line separators, BOM (C0 controls are
# always escaped by JSON itself)
_UNSAFE_IN_JSON: Final = re.compile(
    "[\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]"
)


def json_safe(encoded: bytes) -> bytes:
    """UTF-8 JSON with each such character written as a ``\\uXXXX`` escape: the same value
    for a JSON reader, nothing that reorders or controls what a person sees. They can
    only stand inside strings, where the escape means the same character."""
    text = encoded.decode()
    if text.isascii() and "\x7f" not in text:
        return encoded  # nearly always: nothing to look for
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def shown_time(value: datetime) -> str:
    """A moment as every command prints it: UTC, to the millisecond, ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
