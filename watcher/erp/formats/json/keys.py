"""Duplicate contract keys in JSON orders: proven from the one decode, checked exactly
only when that is no proof.

Pure. A key given twice in one object would leave us guessing which value the ERP meant,
so the order is refused. The proof compares what the decode saw with one cheap scan of
the bytes: every JSON string (a key, or a value) has two unescaped quotes, so when the
quotes counted equal two per contract key the decode found and two per string value it
kept, no key was given twice (a repeat adds a key: two more quotes, escaped or not).
Where they differ (unknown keys, quotes inside strings), a second proof counts each key's
spelling; where that differs too, the file is parsed again keeping pairs, and that exact
check decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cached_property
from operator import attrgetter
from typing import Any, NamedTuple, Union

import msgspec

from watcher.core.errors import InvalidOrder, MalformedFile

Buffer = bytes | memoryview | msgspec.Raw
# a contract key's ASCII letter spelled as an escape (``\u006frderNo``): no spelling count
# sees it
_ESCAPED_LETTER = re.compile(rb"\\u00[4-7]")
Fields = Sequence[msgspec.structs.FieldInfo]


class DuplicateKeys:
    """Two values for one contract key would leave us guessing: such an order is refused."""

    def __init__(self, wire: type[msgspec.Struct]) -> None:
        fields = msgspec.structs.fields(wire)
        self._wire = wire
        self._fields = fields
        self._keys = frozenset(field.encode_name for field in fields)
        spell = {field.encode_name: f'"{field.encode_name}"'.encode() for field in fields}
        self._token = re.compile(b"|".join(map(re.escape, spell.values())))
        self._required = [spell[f.encode_name] for f in fields if f.required]
        self._optional = [(f, spell[f.encode_name]) for f in fields if not f.required]
        # one decoder of arrays per set of optional keys spelled in them (see ``_told``)
        self._decoders: dict[tuple[bool, ...], Callable[[Buffer], list[Any]]] = {}

    def decode_one(self, data: Buffer) -> tuple[Any, bool]:
        """One object (a small file, or an element), decoded once (msgspec's errors as it
        raises them), and whether that proves no key came twice (if not: ``refuse_in``).
        An instance of the wire type (see ``decode_many``)."""
        wire = self._decode_told_one(data)
        text = data if isinstance(data, bytes) else bytes(data)
        plan = self._one
        quotes = plan.quotes
        for name in plan.nullable:
            quotes += 0 if getattr(wire, name) is None else 2
        for name, default, factory, quoted in plan.optional:
            value = getattr(wire, name)
            if value is msgspec.UNSET:
                msgspec.structs.force_setattr(wire, name, default if factory is None else factory())
            else:
                quotes += 4 if quoted and value is not None else 2
        if plan.known and text.count(b'"') == quotes:
            return wire, True
        keys = self._token.findall(text)
        return wire, len(keys) == len(set(keys)) and not _ESCAPED_LETTER.search(text)

    def decode_many(self, data: Buffer) -> tuple[list[Any], bool]:
        """The objects of the array ``data``, decoded once (msgspec's errors as it raises
        them), and whether that proves no key came twice in one (if not: ``refuse_in``).
        They are instances of the wire type: a subclass of it that tells an absent optional
        key from one given its default (once counted, the default is set, as the wire type
        would have had it)."""
        text = data if isinstance(data, bytes) else bytes(data)  # a view: a small file
        spelled = [text.count(key) for _, key in self._optional]
        wires = self._decoder(tuple(map(bool, spelled)))(text)
        optional = [
            self._fill(wires, field) if count else (0, 0)
            for (field, _), count in zip(self._optional, spelled, strict=True)
        ]
        proven = self._quotes_prove(text, wires, optional) or self._spellings_prove(
            text, len(wires), spelled, optional
        )
        return wires, proven

    def _quotes_prove(
        self, text: bytes, wires: Sequence[Any], optional: list[tuple[int, int]]
    ) -> bool:
        """Two quotes a string: as many as the keys the decode found and the string values
        it kept have (the optional ones counted by ``_fill``) means no key came twice."""
        kinds = self._kinds
        if kinds is None:
            return False
        quoted, nullable = kinds
        strings = quoted * len(wires) + sum(
            len(wires) - list(map(attrgetter(name), wires)).count(None) for name in nullable
        )
        keys = len(self._required) * len(wires)
        for present, kept in optional:
            keys += present
            strings += kept
        return text.count(b'"') == 2 * (keys + strings)

    def _spellings_prove(
        self, text: bytes, objects: int, spelled: list[int], optional: list[tuple[int, int]]
    ) -> bool:
        """Each key spelled as often as the objects that have it, and no key spelled with
        an escape."""
        if any(text.count(key) != objects for key in self._required):
            return False
        if any(count != present for count, (present, _) in zip(spelled, optional, strict=True)):
            return False
        return not (b"\\u00" in text and _ESCAPED_LETTER.search(text))

    @cached_property
    def _kinds(self) -> tuple[int, list[str]] | None:
        """How the required fields' values are spelled: how many are always strings, and
        which are strings unless null; None when some field's value may be anything else
        (the quotes then prove nothing). Made on first use: ``msgspec.inspect`` is not
        imported by a command that judges nothing."""
        from msgspec import inspect  # on first use (see _kinds)

        quoted, nullable = 0, []
        for field in self._fields:
            kind = _kind(inspect.type_info(field.type), inspect)
            if kind is None:
                return None
            if field.required and kind == "string":
                quoted += 1
            elif field.required and kind == "string or null":
                nullable.append(field.name)
        return quoted, nullable

    @cached_property
    def _one(self) -> _OnePlan:
        """What ``decode_one`` counts: the quotes of the required keys and of their values
        that are always strings, the fields that are strings unless null, and per optional
        field its default and whether its value is a string unless null."""
        kinds = self._kinds
        quoted, nullable = kinds or (0, [])
        optional = [
            (
                field.name,
                field.default,
                None if field.default is not msgspec.NODEFAULT else field.default_factory,
                self._optional_kinds.get(field.name) is not None,
            )
            for field, _ in self._optional
        ]
        quotes = 2 * (len(self._required) + quoted)
        return _OnePlan(kinds is not None, quotes, tuple(nullable), tuple(optional))

    @cached_property
    def _decode_told_one(self) -> Callable[[Buffer], Any]:
        return msgspec.json.Decoder(self._told((True,) * len(self._optional))).decode

    def _decoder(self, spelled: tuple[bool, ...]) -> Callable[[Buffer], list[Any]]:
        decode = self._decoders.get(spelled)
        if decode is None:
            shape: Any = list[self._told(spelled)]  # type: ignore[misc]
            decode = self._decoders[spelled] = msgspec.json.Decoder(shape).decode
        return decode

    def _told(self, spelled: tuple[bool, ...]) -> type[msgspec.Struct]:
        """The wire type, but for its optional keys ``spelled``: ``UNSET`` when absent."""
        told = [f for (f, _), up in zip(self._optional, spelled, strict=True) if up]
        return msgspec.defstruct(
            f"{self._wire.__name__}Told",
            [(f.name, Union[f.type, msgspec.UnsetType], msgspec.UNSET) for f in told],  # noqa: UP007
            bases=(self._wire,),
            frozen=True,
            kw_only=True,
            gc=False,
        )

    def _fill(self, wires: Sequence[Any], field: msgspec.structs.FieldInfo) -> tuple[int, int]:
        """How many of ``wires`` had ``field``, and how many of those as a string (when its
        values are strings or null); its default set where they had not."""
        values = list(map(attrgetter(field.name), wires))
        missing = values.count(msgspec.UNSET)
        if missing:
            default = field.default
            for wire, value in zip(wires, values, strict=True):
                if value is msgspec.UNSET:
                    if field.default is msgspec.NODEFAULT:
                        default = field.default_factory()
                    msgspec.structs.force_setattr(wire, field.name, default)
        present = len(values) - missing
        kind = self._optional_kinds.get(field.name)
        strings = present if kind == "string" else present - values.count(None)
        return present, strings if kind else 0

    @cached_property
    def _optional_kinds(self) -> dict[str, str | None]:
        from msgspec import inspect  # on first use (see _kinds)

        kinds = {f.name: _kind(inspect.type_info(f.type), inspect) for f, _ in self._optional}
        return {name: None if kind == "bare" else kind for name, kind in kinds.items()}

    def refuse_in(self, data: Buffer, prefix: str) -> None:
        """The exact check: the pairs of every object, as parsed (rarely needed)."""
        import json  # only here: never on the path of a file proven

        duplicates: list[str] = []

        def check(pairs: list[tuple[str, object]]) -> None:
            keys = [key for key, _ in pairs if key in self._keys]
            duplicates.extend(key for key in set(keys) if keys.count(key) > 1)

        try:
            json.loads(bytes(data), object_pairs_hook=check)
        except ValueError as exc:
            raise MalformedFile(f"not valid JSON: {exc}") from None
        if duplicates:
            key = sorted(duplicates)[0]
            raise InvalidOrder(f"duplicate key `{key}`", f"{prefix}.{key}")


class _OnePlan(NamedTuple):
    known: bool  # every field's value has a known spelling: the quotes can prove
    quotes: int
    nullable: tuple[str, ...]
    optional: tuple[tuple[str, Any, Callable[[], Any] | None, bool], ...]


def _kind(info: Any, inspect: Any) -> str | None:
    """``string``, ``string or null``, ``bare`` (true, false, a number, or null) for a
    value of this type as JSON spells it; None for anything else (an object, a list, a
    type msgspec may read from more than one kind of JSON value)."""
    while isinstance(info, inspect.Metadata):
        info = info.type
    nullable = False
    if isinstance(info, inspect.UnionType):
        others = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        if len(others) != 1:
            return None
        nullable, info = len(others) < len(info.types), others[0]
        while isinstance(info, inspect.Metadata):
            info = info.type
    strings = isinstance(info, inspect.StrType | inspect.DateTimeType) or (
        isinstance(info, inspect.LiteralType) and all(isinstance(v, str) for v in info.values)
    )
    if strings:
        return "string or null" if nullable else "string"
    if isinstance(info, inspect.BoolType | inspect.IntType | inspect.FloatType):
        return "bare"
    return None
