"""Strict JSON work-order files, for any format whose orders are JSON objects.

One base wire Struct, one decoder per format, and the whole-file rules every JSON format
keeps: UTF-8 only (a leading byte-order mark tolerated), one document per file, a batch
as an array judged element by element, no duplicate keys, precise reasons with paths.
Pure: bytes in, a verdict out.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Generic, TypeVar, Union

import msgspec

from watcher.core.tracos import OrderUpsert, normalise_date
from watcher.erp.port import FileVerdict, Rejection
from watcher.errors import InvalidOrder, MalformedFile, reason_and_path

BOM: Final = b"\xef\xbb\xbf"
MAX_SUMMARY_BYTES: Final = 4 * 2**20
UTF8_STEP: Final = 2**20
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")  # also the start of the UTF-32 marks
_FIRST_SIGN: Final = re.compile(rb"[^ \t\r\n]")  # JSON's whitespace is these four
_JSON_KIND: Final = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}
_JSON_KIND[type(None)] = "null"
_decode_elements = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder().decode
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
    upsert (raising ``InvalidOrder`` with a path relative to the order, ``$.key``)."""

    def __init__(self, wire: type[W], translate: Callable[[W], OrderUpsert]) -> None:
        self._wire = wire
        self._decode_one: Callable[[bytes], W] = msgspec.json.Decoder(wire).decode
        self._decode_many: Callable[[bytes], list[W]] = msgspec.json.Decoder(list[wire]).decode  # type: ignore[valid-type]
        self._translate_one = translate
        self._keys = frozenset(field.encode_name for field in msgspec.structs.fields(wire))
        self._spellings = tuple(f'"{key}"'.encode() for key in self._keys)
        self._key_token = re.compile(b"|".join(map(re.escape, self._spellings)))

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
            return self._judge_batch(data)
        if first != b"{":
            value = _decode(_decode_any, data, "$")
            kind = _JSON_KIND.get(type(value), type(value).__name__)
            raise InvalidOrder(f"expected a JSON object or array, got {kind}")
        order = _decode(self._decode_one, data, "$")
        self._refuse_duplicate_keys(data, 1, "$")
        return FileVerdict(orders=[self._translate(order, "$")], rejected=[], is_batch=False)

    def _judge_batch(self, data: bytes) -> FileVerdict:
        try:
            orders = _decode(self._decode_many, data, "$")
            self._refuse_duplicate_keys(data, len(orders), "$")
            upserts = [self._translate(o, f"$[{i}]") for i, o in enumerate(orders)]
            return FileVerdict(upserts, [], True)
        except InvalidOrder:
            pass  # at least one element is bad: judge them one by one
        elements = _decode(_decode_elements, data, "$")
        good: list[OrderUpsert] = []
        bad: list[Rejection] = []
        for index, raw in enumerate(elements):
            try:
                good.append(self._judge_element(bytes(raw), f"$[{index}]"))
            except InvalidOrder as exc:
                bad.append(Rejection(index, exc.path, exc.reason, raw))
        return FileVerdict(good, bad, is_batch=True)

    def _judge_element(self, data: bytes, prefix: str) -> OrderUpsert:
        order = _decode(self._decode_one, data, prefix)
        self._refuse_duplicate_keys(data, 1, prefix)
        return self._translate(order, prefix)

    def _refuse_duplicate_keys(self, data: bytes, objects: int, prefix: str) -> None:
        """Two values for one contract key would leave us guessing: refuse the order.

        A cheap count of each key's spelling rules out almost every file; only a suspicious
        one is parsed again, keeping pairs, to find a real duplicate within one object.
        """
        if objects == 1:  # one object, a small file: one pass over it
            keys = self._key_token.findall(data)
            if len(keys) == len(set(keys)):
                return
        elif all(data.count(key) <= objects for key in self._spellings):  # no allocation
            return
        duplicates: list[str] = []

        def check(pairs: list[tuple[str, object]]) -> None:
            keys = [key for key, _ in pairs if key in self._keys]
            duplicates.extend(key for key in set(keys) if keys.count(key) > 1)

        try:
            json.loads(data, object_pairs_hook=check)
        except ValueError as exc:
            raise MalformedFile(f"not valid JSON: {exc}") from None
        if duplicates:
            key = sorted(duplicates)[0]
            raise InvalidOrder(f"duplicate key `{key}`", f"{prefix}.{key}")

    def _translate(self, order: W, prefix: str) -> OrderUpsert:
        try:
            return self._translate_one(order)
        except InvalidOrder as exc:
            raise InvalidOrder(exc.reason, prefix + exc.path.removeprefix("$")) from exc


def _decode(decode: Callable[[bytes], T], data: bytes, prefix: str) -> T:
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
