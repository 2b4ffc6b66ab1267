"""A JSON array cut into pieces of whole elements, so a huge batch is judged a piece at a time.

Pure. A piece is a run of the array's elements as a JSON array of its own, about ``size``
bytes of them, found without building any element: a cut is proposed at a comma past
``size`` and proven by decoding the piece while skipping its values. A cut inside a string
or inside a nested value can never decode that way (the string or the value is left open),
so a piece that decodes always ends at a real element boundary. An element larger than
``size`` is handed out on its own, as a view of the file (never copied).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

import msgspec

PIECE_BYTES: Final = 2**18
_skip = msgspec.json.Decoder(msgspec.Raw).decode  # checks the syntax, builds nothing
_WHITESPACE: Final = b" \t\r\n"
_AFTER_VALUE: Final = re.compile(rb"[}\]][ \t\r\n]*,")  # after an object or array: mostly
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_SCALAR: Final = re.compile(rb'[^,\[\]{}" \t\r\n]*')
_CLOSED: Final = re.compile(rb"\][ \t\r\n]*\Z")
_NON_SPACE: Final = re.compile(rb"[^ \t\r\n]")


class Single(NamedTuple):
    """One element too large for a piece: its bytes, a view of the file."""

    element: memoryview


Piece = bytes | memoryview | Single


def pieces(data: bytes, start: int, size: int = PIECE_BYTES) -> Iterator[Piece]:
    """The array that opens at ``data[start]``, as JSON arrays of consecutive elements.

    Every piece but the last holds at least one element. The last is the rest of the file
    behind a ``[`` of its own (its closing bracket and whatever follows included): decoding
    it finds any error in the file. When it is the only piece, it is ``data[start:]``.
    """
    pos = start + 1
    while pos + size < len(data):
        found = _quick_cut(data, pos, size) or _walk(data, pos, size)
        if found is None:
            break  # malformed (or a last element that is not closed): the rest says why
        piece, pos = found
        yield piece
        if pos < 0:
            return  # a large last element, and the array closed behind it
    yield memoryview(data)[start:] if pos == start + 1 else b"[" + data[pos:]


def _quick_cut(data: bytes, pos: int, size: int) -> tuple[Piece, int] | None:
    """A proven cut between ``pos + size`` and ``pos + 2 * size``, when a first guess holds."""
    target = pos + size
    after_value = _AFTER_VALUE.search(data, target, target + size)
    guesses = (
        after_value.end() - 1 if after_value else -1,
        data.find(b",", target, target + size),
    )
    for cut in guesses:
        if cut > 0 and (found := _run(data, pos, cut)):
            return found
    return None


def _run(data: bytes, start: int, cut: int) -> tuple[Piece, int] | None:
    """``[`` + ``data[start:cut]`` + ``]`` and the next start, if that is an array of at
    least one element."""
    if not _NON_SPACE.search(data, start, cut):
        return None  # two commas in a row, or a comma right after the opening bracket
    piece = b"[" + data[start:cut] + b"]"
    return (piece, cut + 1) if _decodes(piece) else None


def _decodes(view: bytes | memoryview) -> bool:
    try:
        _skip(view)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _walk(data: bytes, pos: int, size: int) -> tuple[Piece, int] | None:
    """The slow way, element by element: a run of small elements up to a comma past
    ``pos + size``, or one large element on its own; and where the next piece starts
    (-1 when the array closed behind it). None when no boundary can be proven."""
    run_start, target = pos, pos + size
    while True:
        first = _skip_space(data, pos)
        end = _element_end(data, first)
        if end is None:
            return None
        after = _skip_space(data, end)
        if end - first > size:  # large: what came before it goes first, as a run
            return (
                _run(data, run_start, pos - 1)
                if pos > run_start
                else _single(data, first, end, after)
            )
        if after >= len(data) or data[after] != ord(","):
            return None  # the array ends here (the rest decodes it), or it is malformed
        if after >= target:
            return _run(data, run_start, after)
        pos = after + 1


def _single(data: bytes, first: int, end: int, after: int) -> tuple[Piece, int] | None:
    element = memoryview(data)[first:end]
    if not _decodes(element):
        return None
    if after < len(data) and data[after] == ord(","):
        return Single(element), after + 1
    return (Single(element), -1) if _CLOSED.match(data, after) else None


def _skip_space(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _WHITESPACE:
        pos += 1
    return pos


def _element_end(data: bytes, pos: int) -> int | None:
    """Where the value starting at ``pos`` ends (only a guess for a malformed one)."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first == ord('"'):
        string = _STRING.match(data, pos)
        return string.end() if string else None
    if first not in b"[{":
        scalar = _SCALAR.match(data, pos)
        return scalar.end() if scalar and scalar.end() > pos else None
    depth = 0
    for token in _TOKEN.finditer(data, pos):
        depth += 1 if token.group() in (b"[", b"{") else -1 if token.group() in (b"]", b"}") else 0
        if depth == 0:
            return token.end()
    return None
