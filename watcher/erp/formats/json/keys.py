"""Duplicate contract keys in JSON orders: proven from the one decode, checked exactly
only when that is no proof.

Pure. A key given twice in one object would leave us guessing which value the ERP meant,
so the order is refused. Counting each key's spelling in the bytes (a C scan) against the
objects the decode found that have the key proves there is none, in nearly every file;
when the counts differ (a key's spelling in a value or a nested object, a key spelled
with an escape), the file is parsed again keeping pairs, and that exact check decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Union

import msgspec

from watcher.core.errors import InvalidOrder, MalformedFile

Buffer = bytes | memoryview | msgspec.Raw
# a contract key's ASCII letter spelled as an escape (``\u006frderNo``): no count sees it
_ESCAPED_LETTER = re.compile(rb"\\u00[4-7]")


class DuplicateKeys:
    """Two values for one contract key would leave us guessing: such an order is refused."""

    def __init__(self, wire: type[msgspec.Struct]) -> None:
        fields = msgspec.structs.fields(wire)
        self._wire = wire
        self._keys = frozenset(field.encode_name for field in fields)
        spell = {field.encode_name: f'"{field.encode_name}"'.encode() for field in fields}
        self._token = re.compile(b"|".join(map(re.escape, spell.values())))
        self._required = [spell[f.encode_name] for f in fields if f.required]
        self._optional = [(f, spell[f.encode_name]) for f in fields if not f.required]
        # one decoder of arrays per set of optional keys spelled in them (see ``_decoder``)
        self._decoders: dict[tuple[bool, ...], Callable[[Buffer], list[Any]]] = {}

    def refuse_in_one(self, data: Buffer, prefix: str) -> None:
        """One object (a small file, or an element): each key spelled at most once is the
        proof (one pass over it)."""
        keys = self._token.findall(data)
        if len(keys) != len(set(keys)) or _ESCAPED_LETTER.search(data):
            self._refuse_in(data, prefix)

    def decode_many(self, data: Buffer) -> list[Any]:
        """The objects of the array ``data``, decoded once (msgspec's errors as it raises
        them); a key given twice in one of them raises ``InvalidOrder``. They are instances
        of the wire type (a subclass of it that tells an absent optional key from one given
        its default: once counted, the default is set, as the wire type would have)."""
        text = data if isinstance(data, bytes) else bytes(data)  # a view: a small file
        spelled = [text.count(key) for _, key in self._optional]
        wires = self._decoder(tuple(map(bool, spelled)))(text)
        proven = all(text.count(key) == len(wires) for key in self._required)
        for (field, _), count in zip(self._optional, spelled, strict=True):
            if count and self._fill(wires, field) != count:
                proven = False
        if not proven or (b"\\u00" in text and _ESCAPED_LETTER.search(text)):
            self._refuse_in(text, "$")
        return wires

    def _decoder(self, spelled: tuple[bool, ...]) -> Callable[[Buffer], list[Any]]:
        """Arrays of the wire type whose optional keys ``spelled`` are ``UNSET`` when absent."""
        decode = self._decoders.get(spelled)
        if decode is None:
            told = [f for (f, _), up in zip(self._optional, spelled, strict=True) if up]
            shape = msgspec.defstruct(
                f"{self._wire.__name__}Told",
                [(f.name, Union[f.type, msgspec.UnsetType], msgspec.UNSET) for f in told],  # noqa: UP007
                bases=(self._wire,),
                frozen=True,
                kw_only=True,
                gc=False,
            )
            decode = self._decoders[spelled] = msgspec.json.Decoder(list[shape]).decode  # type: ignore[valid-type]
        return decode

    @staticmethod
    def _fill(wires: Sequence[Any], field: msgspec.structs.FieldInfo) -> int:
        """How many of ``wires`` had ``field``; its default set where they had not."""
        missing = list(map(attrgetter(field.name), wires)).count(msgspec.UNSET)
        if missing:
            for wire in wires:
                if getattr(wire, field.name) is msgspec.UNSET:
                    default = field.default
                    if default is msgspec.NODEFAULT:
                        default = field.default_factory()
                    msgspec.structs.force_setattr(wire, field.name, default)
        return len(wires) - missing

    def _refuse_in(self, data: Buffer, prefix: str) -> None:
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
