"""The logbook's chain: what ``append_many`` hashes (built from the JSON ``prepare`` cut
around the head's values) is exactly what ``digest`` recomputes when the chain is verified,
whatever the values hold."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, col, select

from archivage import logbook
from archivage.models import LogbookEvent
from martinique_connect.database import upgrade
from plateforme.db import make_engine

ENTRIES = [
    logbook.Entry("ingestion", organisation="lamentin", operation_id="op1", agent="archiviste",
                  detail={"deposit_id": "lot \"1\"\n\\", "files": 2, "bytes": 10 ** 12}),
    logbook.Entry("accession", organisation="lamentin", unit_id="mcb", operation_id="op1",
                  agent="Émilie Théodore <é@ex.mq>",
                  detail={"title": "Délibération « n° 3 » \u2028 \t", "level": "item"}),
    logbook.Entry("message digest calculation", unit_id="mcb", object_id="o1",
                  detail={"sha512": "ab" * 64, "copies": ["a", "b"], "format": None}),
    logbook.Entry("deletion", outcome="failure"),  # no organisation, agent, detail
]


def test_appended_hashes_are_the_digests_the_verification_recomputes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    with Session(engine) as session:
        logbook.append_many(session, logbook.prepare(ENTRIES))
        logbook.append_many(session, ENTRIES[1:3])  # not prepared: the same path
        logbook.append(session, "access", unit_id="mcb", detail={"n": 1})
        session.commit()
    with Session(engine) as session:
        events = list(session.exec(select(LogbookEvent).order_by(col(LogbookEvent.seq))))
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6, 7]
        prev = "0" * 64
        for event in events:
            assert event.prev_hash == prev
            assert logbook.digest(prev, event) == event.hash
            prev = event.hash
        assert events[1].detail == ('{"level": "item", "title": '
                                    '"Délibération « n° 3 » \u2028 \\t"}')
        assert logbook.verify(session).ok
        assert len({e.id for e in events}) == 7 and all(len(e.id) == 32 for e in events)
