"""Identifiers drawn in bulk look like the ones drawn one by one, and do not repeat."""

from __future__ import annotations

import uuid
from collections import Counter

from archivage.identifiers import BETANUMERIC, is_unit_id, mint, mint_many, uuid4_hex_many


def test_minted_in_bulk_like_one_by_one() -> None:
    many = mint_many(500)
    assert len(many) == len(set(many)) == 500
    assert all(is_unit_id(m) and len(m) == len(mint()) for m in many)
    assert mint_many(0) == []
    # every character of the alphabet, none favoured (about 41 000 draws each; a modulo
    # without rejection would give the first ones 10 % more)
    counts = Counter("".join(m[2:] for m in mint_many(100_000)))
    assert set(counts) == set(BETANUMERIC)
    assert max(counts.values()) < 1.06 * min(counts.values())


def test_uuid4_in_bulk() -> None:
    many = uuid4_hex_many(300)
    assert len(set(many)) == 300
    assert all(uuid.UUID(u).version == 4 and uuid.UUID(u).hex == u for u in many)
    assert uuid4_hex_many(0) == []
