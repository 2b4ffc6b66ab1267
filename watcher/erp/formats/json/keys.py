"""Duplicate contract keys in JSON orders: found cheaply, proven by a second parse.

Pure. A key given twice in one object would leave us guessing which value the ERP meant,
so the order is refused; the checks here decide that without building the objects.
"""

from __future__ import annotations

import json
import re

import msgspec

from watcher.core.errors import InvalidOrder, MalformedFile

Buffer = bytes | memoryview | msgspec.Raw


class DuplicateKeys:
    """Two values for one contract key would leave us guessing: such an order is refused.

    A cheap count of each key's spelling rules out almost every file; only a suspicious
    one is parsed again, keeping pairs, to find a real duplicate within one object.
    """

    def __init__(self, wire: type[msgspec.Struct]) -> None:
        fields = msgspec.structs.fields(wire)
        self._keys = frozenset(field.encode_name for field in fields)
        spell = {field.encode_name: f'"{field.encode_name}"'.encode() for field in fields}
        self._token = re.compile(b"|".join(map(re.escape, spell.values())))
        self._required = [spell[f.encode_name] for f in fields if f.required]
        optional = [f for f in fields if not f.required]
        self._optional = [(f.name, spell[f.encode_name]) for f in optional]
        # which optional keys each object of a batch has (their values are not decoded)
        presence = msgspec.defstruct(
            f"{wire.__name__}Keys",
            [(f.name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for f in optional],
            rename={f.name: f.encode_name for f in optional},
        )
        self._decode_presence = msgspec.json.Decoder(list[presence]).decode  # type: ignore[valid-type]

    def refuse_in_one(self, data: Buffer, prefix: str) -> None:
        """One object (a small file, or an element): one pass over it."""
        keys = self._token.findall(data)
        if len(keys) != len(set(keys)):
            self._refuse_in(data, prefix)

    def refuse_in_many(self, data: Buffer, objects: int) -> None:
        """An array of ``objects`` decoded objects: each key spelled exactly once in each
        object that has it proves there is no duplicate (counted, for a required key)."""
        text = data if isinstance(data, bytes) else bytes(data)  # a view: a small file
        if any(text.count(key) != objects for key in self._required):
            self._refuse_in(text, "$")
            return
        spelled = [(name, text.count(key)) for name, key in self._optional]
        if not any(count for _, count in spelled):
            return
        present = self._decode_presence(text)
        for name, count in spelled:
            if count != sum(getattr(keys, name) is not msgspec.UNSET for keys in present):
                self._refuse_in(text, "$")
                return

    def _refuse_in(self, data: Buffer, prefix: str) -> None:
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
