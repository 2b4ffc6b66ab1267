"""Strict JSON work-order files, for any format whose orders are JSON objects.

One base wire Struct, one decoder per format, and the whole-file rules every JSON format
keeps: UTF-8 only (a leading byte-order mark tolerated), one document per file, a batch
as an array judged element by element, no duplicate keys, precise reasons with paths.
Pure: bytes in, a verdict out.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Generic, TypeVar, Union

import msgspec

from watcher.core.errors import InvalidOrder, MalformedFile, capped, reason_and_path
from watcher.core.tracos import OrderUpsert, normalise_date
from watcher.erp.formats.json import array as json_array
from watcher.erp.formats.json.keys import Buffer, DuplicateKeys
from watcher.erp.port import LISTED, FileVerdict, Rejection

BOM: Final = b"\xef\xbb\xbf"
MAX_SUMMARY_BYTES: Final = 4 * 2**20
UTF8_STEP: Final = 2**20
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")  # also the start of the UTF-32 marks
_FIRST_SIGN: Final = re.compile(rb"[^ \t\r\n]")  # JSON's whitespace is these four
_WHITESPACE: Final = b" \t\r\n"
_BYTE: Final = re.compile(r"\(byte (\d+)\)")  # where msgspec says a syntax error is
_JSON_KIND: Final = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}
_JSON_KIND[type(None)] = "null"
_decode_elements = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder().decode
_skip = msgspec.json.Decoder(msgspec.Raw).decode
T = TypeVar("T")


class WireStruct(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """The base of every ERP wire shape: camelCase keys, snake_case attributes.

    Subclasses inherit these settings; they repeat ``frozen`` and ``kw_only`` only so a
    type checker sees them too.
    """


W = TypeVar("W", bound=WireStruct)


# Dates as the schema shows them (RFC 3339 date-times); decoding is unchanged by this.
_DATE_TIME: Final = msgspec.Meta(extra_json_schema={"format": "date-time"})
ErpDate = Annotated[datetime, _DATE_TIME]  # without an offset it is taken as UTC
FileDate = Annotated[str, _DATE_TIME]  # as ``format_date`` spells it
SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def json_schema(shape: Any, title: str, description: str) -> dict[str, Any]:
    """The JSON Schema of ``shape`` (Structs and their annotations), for the ERP's team."""
    schema = msgspec.json.schema(shape)
    return {"$schema": SCHEMA_DIALECT, "title": title, "description": description, **schema}


def file_schema(wire: type[WireStruct], name: str) -> dict[str, Any]:
    """The schema of the files the worker writes: one ``wire`` object each, every key present
    (a file is encoded with its defaults too)."""
    schema = json_schema(wire, f"{name} outbound file", "One work order per file.")
    for definition in schema["$defs"].values():
        definition["required"] = list(definition["properties"])
    return schema


def format_date(value: datetime) -> str:
    """The ERP's date spelling: ``2025-10-01T00:04:29.045000+00:00``."""
    return normalise_date(value).isoformat(timespec="microseconds")


def encode_file(order: WireStruct) -> bytes:
    """An outbound file's bytes: the keys in field order, indented, newline-terminated."""
    return msgspec.json.format(msgspec.json.encode(order), indent=2) + b"\n"


def utc(value: datetime, key: str) -> datetime:
    """A decoded date as stored: UTC, milliseconds; out of range once in UTC is refused."""
    try:
        return normalise_date(value)
    except OverflowError:
        raise InvalidOrder("date out of range once converted to UTC", f"$.{key}") from None


def check_summary(summary: str) -> None:
    """Title and description both hold the summary, in one 16 MB MongoDB document."""
    if len(summary) <= MAX_SUMMARY_BYTES // 4:
        return  # at most 4 bytes a character in UTF-8: no need to count
    size = len(summary.encode())
    if size > MAX_SUMMARY_BYTES:
        reason = f"summary too long: {size:,} bytes, at most {MAX_SUMMARY_BYTES:,}"
        raise InvalidOrder(reason + " (stored twice in one 16 MB document)", "$.summary")


class JsonOrders(Generic[W]):
    """Judge files of one ``wire`` object or an array of them; ``translate`` makes each an
    upsert (raising ``InvalidOrder`` with a path relative to the order, ``$.key``).

    A batch is judged a piece of about ``piece_bytes`` at a time (``json_array``), so the
    decoded wire objects of a huge file never coexist: what is kept is its upserts, the
    first ``LISTED`` refusals and the refused elements' bytes.
    """

    def __init__(
        self,
        wire: type[W],
        translate: Callable[[W], OrderUpsert],
        piece_bytes: int = json_array.PIECE_BYTES,
    ) -> None:
        self._wire = wire
        self._decode_one: Callable[[Buffer], W] = msgspec.json.Decoder(wire).decode
        self._translate_one = translate
        self._piece_bytes = piece_bytes
        self._keys = DuplicateKeys(wire)

    def schema(self, name: str) -> dict[str, Any]:
        """The schema of the files the ERP drops: one order, or an array of them (a batch)."""
        shape = Union[self._wire, list[self._wire]]  # type: ignore[name-defined]  # noqa: UP007
        about = (
            "One work order per file, or a JSON array of them (each element judged on its own)."
            " UTF-8; each key at most once per object; unknown keys are ignored."
        )
        return json_schema(shape, f"{name} inbound file", about)

    def judge(self, data: bytes) -> FileVerdict:
        """Decode a whole file: one order or a batch, each element judged on its own."""
        if data.startswith(UTF16_BOMS):
            raise MalformedFile("not UTF-8: the file starts with a UTF-16/32 byte-order mark")
        data = data.removeprefix(BOM)
        _check_utf8(data)
        found = _FIRST_SIGN.search(data)
        if found is None:
            raise MalformedFile("empty file")
        first = found.group()
        if first == b"[":
            return _Batch(self, data).judge(found.start())
        if first != b"{":
            value = _decode(_decode_any, data, "$")
            kind = _JSON_KIND.get(type(value), type(value).__name__)
            raise InvalidOrder(f"expected a JSON object or array, got {kind}")
        order = self._decode_proven(data, "$")
        return FileVerdict(orders=(self._translate(order, "$"),), rejected=(), is_batch=False)

    def _judge_element(self, data: Buffer, prefix: str) -> OrderUpsert:
        return self._translate(self._decode_proven(data, prefix), prefix)

    def _decode_proven(self, data: Buffer, prefix: str) -> W:
        """One object, decoded once; a key given twice refused at its path."""
        order, proven = _decode(self._keys.decode_one, data, prefix)
        if not proven:
            self._keys.refuse_in(data, prefix)
        return order  # type: ignore[no-any-return]

    def _translate(self, order: W, prefix: str) -> OrderUpsert:
        try:
            return self._translate_one(order)
        except InvalidOrder as exc:
            raise InvalidOrder(exc.reason, prefix + exc.path.removeprefix("$")) from exc


class _Batch(Generic[W]):
    """One batch file being judged, piece by piece: what its verdict will hold."""

    def __init__(self, orders: JsonOrders[W], data: bytes) -> None:
        self.orders = orders
        self.data = data
        self.good: list[OrderUpsert] = []
        self.listed: list[Rejection] = []
        self.refused = 0
        self.refused_bytes: list[bytes] = []
        self.typed = True  # every element so far decoded as the wire type (for error messages)
        self.index = 0  # the next element's
        self.malformed: MalformedFile | None = None  # an element's: raised if the file is fine

    def judge(self, start: int) -> FileVerdict:
        for piece in json_array.pieces(self.data, start, self.orders._piece_bytes):
            if isinstance(piece, json_array.Single):
                self._judge_single(piece.element)
            elif not self._judge_together(piece):
                self._judge_alone(piece, self._elements(piece))
        if self.malformed is not None:
            raise self.malformed
        unlisted = self.refused - len(self.listed)
        return FileVerdict(self.good, self.listed, True, unlisted, self.refused_bytes)

    def _judge_together(self, piece: Buffer) -> bool:
        """The whole piece at once; False when its elements must be judged one by one."""
        try:
            wires, proven = self.orders._keys.decode_many(piece)
        except msgspec.ValidationError:
            self.typed = False
            return False
        except msgspec.DecodeError as exc:
            if not self.typed:
                return False  # judged one by one, the error is worded as then
            raise self._error(piece, exc) from None
        except RecursionError:
            raise MalformedFile("not valid JSON: nested too deeply") from None
        self._check_not_empty(len(wires))
        try:
            if not proven:
                self.orders._keys.refuse_in(piece, "$")
            upserts = list(map(self.orders._translate_one, wires))
        except InvalidOrder:  # judged one by one, each refusal gets its element's path
            return False
        self.good.extend(upserts)
        self.index += len(wires)
        return True

    def _elements(self, piece: Buffer) -> list[msgspec.Raw]:
        try:
            elements = _decode_elements(piece)
        except msgspec.DecodeError as exc:
            raise self._error(piece, exc) from None
        except RecursionError:
            raise MalformedFile("not valid JSON: nested too deeply") from None
        self._check_not_empty(len(elements))
        return elements

    def _judge_single(self, element: memoryview) -> None:
        try:
            self.orders._decode_one(element)
        except msgspec.ValidationError:
            self.typed = False
        self._judge_alone(None, [element])

    def _judge_alone(self, piece: Buffer | None, elements: Sequence[Buffer]) -> None:
        """Each element on its own: the good kept, the bad listed and kept as bytes."""
        bad: list[Buffer] = []
        for element in elements:
            try:
                self.good.append(self.orders._judge_element(element, f"$[{self.index}]"))
            except InvalidOrder as exc:
                self._refuse(exc)
                bad.append(element)
            except MalformedFile as exc:  # a syntax error further on comes first
                self.malformed = self.malformed or exc
            self.index += 1
        if piece is not None and bad and len(bad) == len(elements):
            self.refused_bytes.append(bytes(piece).rstrip(_WHITESPACE)[1:-1].strip(_WHITESPACE))
        elif bad:
            self.refused_bytes.append(b",\n".join(map(bytes, bad)))

    def _refuse(self, exc: InvalidOrder) -> None:
        self.refused += 1
        if len(self.listed) < LISTED:
            self.listed.append(Rejection(self.index, capped(exc.path), capped(exc.reason)))

    def _check_not_empty(self, count: int) -> None:
        """Only ``[]`` has no element: a piece after a cut holds one (``[1,]`` is malformed)."""
        if count == 0 and self.index > 0:
            raise MalformedFile(f"not valid JSON: {_syntax_error(self.data)}")

    def _error(self, piece: Buffer, exc: msgspec.DecodeError) -> MalformedFile:
        """The file's error as decoding it whole words it: ``piece`` is the rest of the file."""
        after_cut = _FIRST_SIGN.search(piece, 1) if self.index > 0 else None
        if after_cut and after_cut[0] == b"]":  # ``,]``: decoded alone, ``[]`` looks fine
            return MalformedFile(f"not valid JSON: {_syntax_error(self.data)}")
        shift = len(self.data) - len(piece)
        message = _BYTE.sub(lambda m: f"(byte {int(m[1]) + shift})", str(exc))
        return MalformedFile(f"not valid JSON: {message}")


def _decode(decode: Callable[[Buffer], T], data: Buffer, prefix: str) -> T:
    try:
        return decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidOrder(*reason_and_path(str(exc), prefix)) from exc
    except msgspec.DecodeError as exc:
        raise MalformedFile(f"not valid JSON: {exc}") from exc
    except RecursionError:
        raise MalformedFile("not valid JSON: nested too deeply") from None


def _check_utf8(data: bytes) -> None:
    """The whole file must be UTF-8 (msgspec would skip bad bytes in ignored keys).

    Checked in 1 MiB steps so a large batch file is never copied whole into a ``str``.
    """
    if len(data) <= UTF8_STEP:  # nearly every file: one call, no decoder object
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise MalformedFile(f"not valid UTF-8: byte {exc.start} ({exc.reason})") from None
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), UTF8_STEP):
        try:
            decoder.decode(view[start : start + UTF8_STEP], final=start + UTF8_STEP >= len(data))
        except UnicodeDecodeError as exc:
            where = start + exc.start - len(decoder.getstate()[0])
            raise MalformedFile(f"not valid UTF-8: byte {where} ({exc.reason})") from None


def _syntax_error(data: bytes) -> str:
    """msgspec's words for the syntax error in ``data`` (checked without building anything)."""
    try:
        _skip(data)
    except msgspec.DecodeError as exc:
        return str(exc)
    except RecursionError:
        return "nested too deeply"
    return "unexpected end of the array"
