"""Duplicate contract keys: the proof made from the one decode of each piece gives the
refusals (and paths) of the judge before it, falls back to the exact check whenever it is
not a proof, and keeps no per-file objects for the garbage collector to walk.

``OldDuplicateKeys`` is the check before it (commit 039dd9a), kept here as it was."""

from __future__ import annotations

import gc
import json
import re
import sys
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.builders import FIELDS, erp, mutated_files
from watcher.core.errors import InvalidOrder, MalformedFile, RejectedInput
from watcher.erp.formats.challenge.mapping import erp_to_tracos
from watcher.erp.formats.challenge.schema import ErpWorkOrder
from watcher.erp.formats.json import keys as keys_module
from watcher.erp.formats.json.keys import Buffer
from watcher.erp.formats.json.strict import JsonOrders


class OldDuplicateKeys:
    """The check before the one-decode proof, unchanged but for ``decode_many`` (the
    decode it followed, and then its ``refuse_in_many``)."""

    def __init__(self, wire: type[msgspec.Struct]) -> None:
        fields = msgspec.structs.fields(wire)
        self._keys = frozenset(field.encode_name for field in fields)
        spell = {field.encode_name: f'"{field.encode_name}"'.encode() for field in fields}
        self._token = re.compile(b"|".join(map(re.escape, spell.values())))
        self._required = [spell[f.encode_name] for f in fields if f.required]
        optional = [f for f in fields if not f.required]
        self._optional = [(f.name, spell[f.encode_name]) for f in optional]
        presence = msgspec.defstruct(
            f"{wire.__name__}Keys",
            [(f.name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for f in optional],
            rename={f.name: f.encode_name for f in optional},
        )
        self._decode_presence = msgspec.json.Decoder(list[presence]).decode  # type: ignore[valid-type]
        self._decode_list = msgspec.json.Decoder(list[wire]).decode  # type: ignore[valid-type]
        self._decode_one = msgspec.json.Decoder(wire).decode

    def decode_one(self, data: Buffer) -> tuple[Any, bool]:
        """The decode, then ``refuse_in_one``: its exact check is ``refuse_in``."""
        keys = self._token.findall(data)
        return self._decode_one(data), len(keys) == len(set(keys))

    def decode_many(self, data: Buffer) -> tuple[list[Any], bool]:
        """The decode, then ``refuse_in_many`` (a duplicate it found: no proof)."""
        wires = self._decode_list(data)
        try:
            if wires:
                self.refuse_in_many(data, len(wires))
        except InvalidOrder:
            return wires, False
        return wires, True

    def refuse_in(self, data: Buffer, prefix: str) -> None:
        self._refuse_in(data, prefix)

    def refuse_in_one(self, data: Buffer, prefix: str) -> None:
        keys = self._token.findall(data)
        if len(keys) != len(set(keys)):
            self._refuse_in(data, prefix)

    def refuse_in_many(self, data: Buffer, objects: int) -> None:
        text = data if isinstance(data, bytes) else bytes(data)
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


def judges(piece_bytes: int) -> tuple[JsonOrders[ErpWorkOrder], JsonOrders[ErpWorkOrder]]:
    new = JsonOrders(ErpWorkOrder, erp_to_tracos, piece_bytes=piece_bytes)
    old = JsonOrders(ErpWorkOrder, erp_to_tracos, piece_bytes=piece_bytes)
    old._keys = OldDuplicateKeys(ErpWorkOrder)  # type: ignore[assignment]
    return new, old


def outcome(judge: JsonOrders[ErpWorkOrder], data: bytes) -> object:
    try:
        verdict = judge.judge(data)
    except RejectedInput as exc:
        return type(exc).__name__, exc.reason, exc.path
    refused = b"".join(verdict.rejected_chunks())
    return list(verdict.orders), list(verdict.rejected), verdict.unlisted, refused


def _escaped(key: str) -> str:
    """``key`` as JSON may spell it: its first letter as a ``\\u`` escape."""
    return f"\\u{ord(key[0]):04x}{key[1:]}"


@st.composite
def files_with_repeats(draw: st.DrawFn) -> bytes:
    """Valid orders, one or a batch, where keys are given again (maybe escaped), spelled in
    values, or missing: what the proof must tell apart."""
    count = draw(st.integers(1, 4))
    texts = []
    for number in range(count):
        order = erp(orderNo=number, deletedDate=None)
        for key in draw(st.lists(st.sampled_from(["deletedDate", "isActive"]), max_size=2)):
            order.pop(key, None)
        if draw(st.booleans()):
            order["isActive"] = draw(st.booleans())
        if draw(st.booleans()):
            order["summary"] = f'says "{draw(st.sampled_from(FIELDS))}"'
        text = json.dumps(order, indent=draw(st.sampled_from([None, 1])))
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from(FIELDS))
            spelled = _escaped(key) if draw(st.booleans()) else key
            value = json.dumps(order.get(key, True))
            text = text[:-1].rstrip() + f', "{spelled}": {value}}}'
        texts.append(text)
    if count == 1 and draw(st.booleans()):
        return texts[0].encode()
    return ("[" + ", ".join(texts) + "]").encode()


def exact_finds_an_escaped_repeat(data: bytes) -> bool:
    """The one case where the judge before missed a duplicate: a key spelled with an escape."""
    return b"\\u" in data


@settings(max_examples=300, deadline=None)
@given(files_with_repeats() | mutated_files(batch_size=6), st.sampled_from([1, 64, 2**20]))
def test_the_verdict_is_the_old_judges(data: bytes, piece_bytes: int) -> None:
    """Same orders, same refusals at the same paths, same words, however the batch is cut;
    where they differ, the old judge missed a key repeated through an escape."""
    new, old = judges(piece_bytes)
    found, before = outcome(new, data), outcome(old, data)
    if found != before:
        assert exact_finds_an_escaped_repeat(data), (found, before)
        assert "duplicate key" in repr(found)


@pytest.mark.parametrize("batch", [False, True])
def test_a_key_repeated_through_an_escape_is_refused(batch: bool) -> None:
    """``"\\u006frderNo"`` is ``orderNo``: two values for it are refused, as a plain repeat is."""
    text = json.dumps(erp(orderNo=1))[:-1] + f', "{_escaped("orderNo")}": 2}}'
    new, _ = judges(2**20)
    if not batch:
        with pytest.raises(InvalidOrder, match="duplicate key `orderNo`"):
            new.judge(text.encode())
        return
    verdict = new.judge(f"[{text}, {json.dumps(erp(orderNo=3))}]".encode())
    assert [o.number for o in verdict.orders] == [3]
    assert [(r.path, r.reason) for r in verdict.rejected] == [
        ("$[0].orderNo", "duplicate key `orderNo`")
    ]


def decodes(judge: JsonOrders[ErpWorkOrder], data: bytes) -> int:
    """How many times judging ``data`` runs a msgspec decoder."""
    calls = 0

    def count(frame: object, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "c_call" and getattr(arg, "__qualname__", "") == "Decoder.decode"

    sys.setprofile(count)
    try:
        judge.judge(data)
    finally:
        sys.setprofile(None)
    return calls


def test_an_ordinary_batch_is_decoded_once_and_proven_without_the_exact_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``deletedDate`` in every order (mostly null), ``isActive`` in some: proven from the one
    decode of the piece; a contract key's spelling elsewhere (a nested object's key) is no
    proof, so the exact check runs then."""
    calls: list[bytes] = []
    exact = keys_module.DuplicateKeys.refuse_in

    def spy(self: keys_module.DuplicateKeys, data: Buffer, prefix: str) -> None:
        calls.append(bytes(data))
        exact(self, data, prefix)

    monkeypatch.setattr(keys_module.DuplicateKeys, "refuse_in", spy)
    orders = [erp(orderNo=n) for n in range(50)]
    orders[3]["isActive"] = True
    orders[4] |= {"isDeleted": True, "deletedDate": "2025-10-01T00:00:00Z"}
    del orders[5]["deletedDate"]
    new, _ = judges(2**20)
    assert len(new.judge(json.dumps(orders).encode()).orders) == 50
    assert calls == []
    assert decodes(new, json.dumps(orders).encode()) == 1
    assert decodes(new, json.dumps(orders[4]).encode()) == 1
    orders[6]["extra"] = {"deletedDate": None}
    assert len(new.judge(json.dumps(orders).encode()).orders) == 50
    assert len(calls) == 1


def test_a_verdict_holds_nothing_the_garbage_collector_walks() -> None:
    """A one-order file's verdict: untracked once collected (tuples of untracked orders)."""
    new, _ = judges(2**20)
    verdicts = [new.judge(json.dumps(erp(orderNo=n)).encode()) for n in range(3)]
    gc.collect()
    for verdict in verdicts:
        parts = (verdict, verdict.orders, verdict.rejected, verdict.rejected_data)
        assert not any(map(gc.is_tracked, parts))


@pytest.mark.parametrize("batch", [False, True])
def test_quotes_prove_nothing_when_a_repeat_could_pass_for_an_absent_key(batch: bool) -> None:
    """``orderNo`` twice, ``deletedDate`` absent but spelled as the summary: the quotes are
    those of one ``deletedDate`` key more, so only the decode's own presence can tell; a
    summary with quotes in it proves nothing either, and is still accepted."""
    order = erp(orderNo=1, summary="deletedDate")
    del order["deletedDate"]
    repeated = json.dumps(order)[:-1] + ', "orderNo": 1}'
    quoted = json.dumps(erp(orderNo=2, summary='say "hi"'))
    new, _ = judges(2**20)
    if not batch:
        with pytest.raises(InvalidOrder, match="duplicate key `orderNo`"):
            new.judge(repeated.encode())
        assert [o.number for o in new.judge(quoted.encode()).orders] == [2]
        return
    verdict = new.judge(f"[{repeated}, {quoted}]".encode())
    assert [o.number for o in verdict.orders] == [2]
    assert [r.path for r in verdict.rejected] == ["$[0].orderNo"]
