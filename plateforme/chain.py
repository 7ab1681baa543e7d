"""Hash chains kept in a table (the audit journal, the archive logbook): each row carries its
sequence number, the previous row's hash and its own; a head row holds the last sequence number
and hash, so a truncated end is seen too."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlmodel import Session, col, select


class Chained(Protocol):
    seq: int
    prev_hash: str
    hash: str


E = TypeVar("E", bound=Chained)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str | None = None


def iter_rows(session: Session, model: Any, *, batch: int = 1000) -> Iterator[Any]:
    """The rows of ``model`` in sequence order, read ``batch`` at a time."""
    last = 0
    while True:
        rows = session.exec(select(model).where(col(model.seq) > last)
                            .order_by(col(model.seq)).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def check(events: Iterable[E], digest: Callable[[str, E], str], *, genesis: str,
          head: tuple[int, str] | None) -> ChainReport:
    """Recompute every hash; report the first entry missing, unlinked or altered, or an end
    cut off before the head's sequence number."""
    prev = genesis
    expected = 1
    checked = 0
    for event in events:
        if event.seq != expected:
            return ChainReport(False, checked, expected, "entrée manquante")
        if event.prev_hash != prev:
            return ChainReport(False, checked, event.seq, "lien vers l'entrée précédente rompu")
        if digest(prev, event) != event.hash:
            return ChainReport(False, checked, event.seq, "contenu modifié")
        prev = event.hash
        expected += 1
        checked += 1
    if head is not None and head != (checked, prev):
        return ChainReport(False, checked, checked + 1, "fin du journal tronquée")
    return ChainReport(True, checked)
