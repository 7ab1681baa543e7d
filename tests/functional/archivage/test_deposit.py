"""Deposits over HTTP: acknowledgement, digests, idempotency, limits, names, quota, search."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session

from archivage import logbook
from tests.functional.archivage.conftest import blob_paths


def _b64(data: bytes, algorithm: str) -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def test_deposit_acknowledgement_download_and_logbook(as_org, platform) -> None:
    lamentin = as_org("lamentin")
    data = b"Deliberation du conseil municipal du 3 mars 2025\n" * 50
    response = lamentin.deposit([("deliberation.txt", data)], producer="Mairie du Lamentin",
                                classification="1.2", keywords=["conseil", "budget"],
                                start_date="2025-03-03", end_date="2025-03-03",
                                document_type="délibération", language="fr")
    assert response.status_code == 201, response.text
    ack = response.json()
    assert ack["organisation"] == "lamentin"
    assert ack["seda_version"] == "2.2"
    [unit] = ack["units"]
    assert unit["ark"] == f"ark:/99999/{unit['id']}" and unit["level"] == "item"
    [stored] = ack["files"]
    assert stored["sha512"] == hashlib.sha512(data).hexdigest()
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["media_type"] == "text/plain" and stored["format_id"] == "x-fmt/111"
    assert len(ack["locations"]) == 2
    assert all(p.is_file() for p in blob_paths(platform, stored["sha512"]))
    assert response.headers["location"] == f"/api/archives/units/{unit['id']}"

    detail = lamentin.get(f"/units/{unit['id']}").json()
    assert detail["title"] == ack["units"][0]["title"] and detail["access"] == "owner"
    assert detail["producer"] == "Mairie du Lamentin"
    assert detail["keywords"] == ["conseil", "budget"]
    [obj] = detail["objects"]
    download = lamentin.get(f"/units/{unit['id']}/objects/{obj['id']}/content")
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["repr-digest"] == (
        f"sha-512=:{_b64(data, 'sha512')}:, sha-256=:{_b64(data, 'sha256')}:")
    assert "attachment" in download.headers["content-disposition"]

    events = [e["event_type"] for e in lamentin.get(f"/units/{unit['id']}/logbook")
              .json()["items"]]
    assert events[0] == "accession" and "message digest calculation" in events
    assert events[-1] == "access"
    journal = platform.provider.journal.verify()
    assert journal.ok


def test_many_files_make_a_file_of_items(as_org) -> None:
    lamentin = as_org("lamentin")
    files = [(f"piece-{i}.txt", f"pièce numéro {i}".encode()) for i in range(3)]
    response = lamentin.deposit(files, title="Dossier de marché", level="file",
                                files=[{"title": "Acte d'engagement",
                                        "sha256": hashlib.sha256(files[0][1]).hexdigest()}])
    assert response.status_code == 201, response.text
    ack = response.json()
    top, *items = ack["units"]
    assert top["level"] == "file" and len(items) == 3
    assert all(i["parent"] == top["id"] and i["level"] == "item" for i in items)
    assert items[0]["title"] == "Acte d'engagement" and items[1]["title"] == "piece-1.txt"
    children = lamentin.get(f"/units/{top['id']}/children").json()["items"]
    assert {c["id"] for c in children} == {i["id"] for i in items}


def test_small_and_large_files_keep_their_order_and_digests(as_org, platform) -> None:
    """Small parts are kept in memory and written in batches, a large one is streamed: the
    acknowledgement lists every file in the order sent, each with its own digests."""
    from archivage.api.multipart import SMALL_BATCH, SMALL_PART

    lamentin = as_org("lamentin")
    small = [(f"note-{i}.bin", secrets.token_bytes(20_000)) for i in range(
        SMALL_BATCH // 20_000 + 5)]  # more than one batch of small parts
    large = ("plan.bin", secrets.token_bytes(SMALL_PART * 3 + 17))
    files = [small[0], large, *small[1:]]
    response = lamentin.deposit(files, title="Dossier mêlé", level="file")
    assert response.status_code == 201, response.text
    ack = response.json()
    assert [f["sha512"] for f in ack["files"]] == [
        hashlib.sha512(data).hexdigest() for _, data in files]
    assert [f["sha256"] for f in ack["files"]] == [
        hashlib.sha256(data).hexdigest() for _, data in files]
    assert [u["title"] for u in ack["units"][1:]] == [name for name, _ in files]
    assert all(p.is_file() for f in ack["files"] for p in blob_paths(platform, f["sha512"]))
    staging = platform.live.app.state.archives.deposits.staging_root
    assert not any(staging.glob("*/*")), list(staging.glob("*/*"))


def test_a_large_part_over_the_limit_is_refused_and_nothing_is_kept(as_org, platform) -> None:
    from archivage.api.multipart import SMALL_PART

    lamentin = as_org("lamentin")
    config = platform.live.app.state.archives.config
    staging = platform.live.app.state.archives.deposits.staging_root
    previous = config.max_deposit_bytes
    config.max_deposit_bytes = SMALL_PART * 2
    first = secrets.token_bytes(SMALL_PART // 2)
    data = secrets.token_bytes(SMALL_PART * 4)

    def chunked() -> Iterator[bytes]:  # no Content-Length: only the streaming can refuse it
        yield (b"--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n"
               b'{"title": "gros"}\r\n--XyZ\r\nContent-Disposition: form-data; '
               b'name="file"; filename="petit.bin"\r\n\r\n' + first + b"\r\n--XyZ\r\n"
               b'Content-Disposition: form-data; name="file"; filename="gros.bin"\r\n\r\n')
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]
        yield b"\r\n--XyZ--\r\n"

    try:
        response = httpx.post(lamentin.url("/deposits"), content=chunked(), headers={
            **lamentin.headers, "Content-Type": "multipart/form-data; boundary=XyZ"})
    finally:
        config.max_deposit_bytes = previous
    assert response.status_code == 413, response.text
    for content in (first, data):
        assert not any(p.exists() for p in blob_paths(platform, hashlib.sha512(
            content).hexdigest()))
    assert not any(staging.glob("*/*")), list(staging.glob("*/*"))


def test_a_series_holds_deposits(as_org) -> None:
    lamentin = as_org("lamentin")
    series = lamentin.post("/units", json={"title": "État civil", "level": "series"})
    assert series.status_code == 201, series.text
    series_id = series.json()["id"]
    response = lamentin.deposit([("acte.txt", b"acte de naissance")], parent=series_id)
    assert response.status_code == 201, response.text
    assert response.json()["units"][0]["parent"] == series_id
    item = response.json()["units"][0]["id"]
    deeper = lamentin.deposit([("x.txt", b"x")], parent=item)
    assert deeper.status_code == 422  # an item holds no units


def test_wrong_digest_is_refused_and_nothing_is_kept(as_org, platform) -> None:
    lamentin = as_org("lamentin")
    data = secrets.token_bytes(2000)
    title = "Altéré " + secrets.token_hex(4)
    response = lamentin.deposit([("scan.bin", data)], title=title,
                                files=[{"sha256": hashlib.sha256(b"other").hexdigest()}])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "SHA256" in response.json()["detail"]
    assert lamentin.get("/units", params={"q": title}).json()["items"] == []
    assert not any(p.exists() for p in blob_paths(platform, hashlib.sha512(data).hexdigest()))
    sha512 = hashlib.sha512(data).hexdigest()
    bad = lamentin.deposit([("scan.bin", data)], files=[{"sha512": "0" * 128}])
    assert bad.status_code == 422 and "SHA512" in bad.json()["detail"]
    good = lamentin.deposit([("scan.bin", data)], files=[{"sha512": sha512}])
    assert good.status_code == 201


def test_same_deposit_identifier_gives_one_deposit(as_org) -> None:
    lamentin = as_org("lamentin")
    key = "versement-" + secrets.token_hex(6)
    first = lamentin.deposit([("a.txt", b"contenu a")], title="Idempotent",
                             headers={"Idempotency-Key": key})
    again = lamentin.deposit([("a.txt", b"contenu a")], title="Idempotent",
                             headers={"Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json() == again.json()
    other = lamentin.deposit([("a.txt", b"autre contenu")], title="Idempotent",
                             headers={"Idempotency-Key": key})
    assert other.status_code == 409
    # The same identifier in another organisation is another deposit.
    schoelcher = as_org("schoelcher")
    assert schoelcher.deposit([("a.txt", b"contenu a")], title="Idempotent",
                              headers={"Idempotency-Key": key}).status_code == 201


def test_concurrent_retries_produce_one_unit(as_org) -> None:
    lamentin = as_org("lamentin")
    key = "concurrent-" + secrets.token_hex(6)
    title = "Concurrent " + secrets.token_hex(4)
    data = secrets.token_bytes(300_000)
    results: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        results.append(lamentin.deposit([("c.bin", data)], title=title, deposit_id=key))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and codes.count(200) == 5, codes
    assert len({json.dumps(r.json(), sort_keys=True) for r in results}) == 1
    found = lamentin.get("/units", params={"q": title}).json()["items"]
    assert len(found) == 1



def test_concurrent_deposits_all_succeed(as_org, platform) -> None:
    """Distinct deposits at once (SQLite takes one writer at a time): each one waits for its
    turn, none fails with « database is locked »."""
    lamentin = as_org("lamentin")
    tag = secrets.token_hex(4)
    count = 12
    results: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(count)

    def send(i: int) -> None:
        barrier.wait()
        results[i] = lamentin.deposit(
            [(f"d{i}-{j}.txt", f"concurrent {tag} {i} {j}".encode()) for j in range(1 + i % 3)],
            title=f"Concurrent {tag} {i}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results.values()) == [201] * count, [
        r.text for r in results.values() if r.status_code != 201]
    for i, response in results.items():
        ack = response.json()
        assert len(ack["files"]) == 1 + i % 3
        top = ack["units"][0]["id"]
        assert lamentin.get(f"/units/{top}").status_code == 200
        events = [e["event_type"] for e in lamentin.get(f"/units/{top}/logbook")
                  .json()["items"]]
        assert "accession" in events, events
    # Appended at once by concurrent transactions, the logbook's chain never forks.
    with Session(platform.live.app.state.archives.engine) as session:
        report = logbook.verify(session)
    assert report.ok, report


def test_size_limit_answers_413_before_storing(as_org, platform) -> None:
    lamentin = as_org("lamentin")
    config = platform.live.app.state.archives.config
    staging = platform.live.app.state.archives.deposits.staging_root
    previous = config.max_deposit_bytes
    config.max_deposit_bytes = 10_000
    data = secrets.token_bytes(50_000)
    try:
        response = lamentin.deposit([("big.bin", data)])
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"

        def chunked() -> Iterator[bytes]:  # no Content-Length: refused while streaming
            boundary = b"XyZ"
            yield (b"--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n"
                   b'{"title": "gros"}\r\n--XyZ\r\nContent-Disposition: form-data; '
                   b'name="file"; filename="big.bin"\r\n\r\n')
            for i in range(0, len(data), 4096):
                yield data[i:i + 4096]
            yield b"\r\n--" + boundary + b"--\r\n"

        streamed = httpx.post(lamentin.url("/deposits"), content=chunked(), headers={
            **lamentin.headers, "Content-Type": "multipart/form-data; boundary=XyZ"})
        assert streamed.status_code == 413
    finally:
        config.max_deposit_bytes = previous
    assert not any(p.exists() for p in blob_paths(platform, hashlib.sha512(data).hexdigest()))
    assert not any(staging.glob("*/*")), list(staging.glob("*/*"))


@pytest.mark.parametrize(("sent", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("rapport\x00\x1b[31m.txt", "rapport[31m.txt"),
    ("..", "document-1"),
    ("a<b>|c:d.txt", "a_b__c_d.txt"),
])
def test_filenames_are_neutralised(as_org, sent, kept) -> None:
    lamentin = as_org("lamentin")
    body = (b'--B0undary\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            b'{"title": "Nom de fichier"}\r\n--B0undary\r\nContent-Disposition: form-data; '
            b'name="file"; filename="' + sent.replace('"', '\\"').encode() + b'"\r\n\r\n'
            b"contenu\r\n--B0undary--\r\n")
    response = httpx.post(lamentin.url("/deposits"), content=body, headers={
        **lamentin.headers, "Content-Type": "multipart/form-data; boundary=B0undary"})
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["filename"] == kept


def test_quota_and_closed_space(as_org, platform) -> None:
    organisation = "saint-pierre"
    spaces = platform.live.app.state.archives.spaces
    client = as_org(organisation)
    spaces.set_quota(organisation, 1000, actor="catalogue", reason="offre de base")
    assert client.deposit([("a.bin", b"x" * 600)]).status_code == 201
    over = client.deposit([("b.bin", b"y" * 600)])
    assert over.status_code == 413
    assert over.json()["title"] == "Quota dépassé"
    usage = spaces.usage(organisation)
    assert (usage.used_bytes, usage.quota_bytes, usage.is_open) == (600, 1000, True)
    assert client.get("/space").json() == {"organisation": organisation, "used_bytes": 600,
                                           "quota_bytes": 1000, "is_open": True}
    spaces.close_space(organisation, actor="catalogue", reason="résiliation")
    closed = client.deposit([("c.bin", b"z")])
    assert closed.status_code == 403 and "fermé" in closed.json()["detail"]
    spaces.set_quota(organisation, 10_000, actor="catalogue", reason="reprise")
    assert client.deposit([("c.bin", b"z")]).status_code == 201
    assert spaces.usage(organisation).used_bytes == 601


def test_search_by_text_and_metadata(as_org) -> None:
    lamentin = as_org("lamentin")
    word = "zanzibar" + secrets.token_hex(3)
    text = f"Compte rendu : la commission a examiné le dossier {word} en séance.".encode()
    response = lamentin.deposit([("cr.txt", text)], title="Compte rendu de commission",
                                producer="Service urbanisme", document_type="compte rendu")
    unit_id = response.json()["units"][0]["id"]
    found = lamentin.get("/units", params={"q": word}).json()["items"]
    assert [u["id"] for u in found] == [unit_id]
    by_producer = lamentin.get("/units", params={"producer": "urbanisme"}).json()["items"]
    assert unit_id in [u["id"] for u in by_producer]
    typed = lamentin.get("/units", params={"q": "commission", "document_type": "compte rendu"})
    assert unit_id in [u["id"] for u in typed.json()["items"]]
    assert lamentin.get("/units", params={"q": word + "x"}).json()["items"] == []


def test_tokens_and_scopes(as_org, as_staff, platform) -> None:
    reader = as_org("lamentin", scopes=["archives:read"])
    assert reader.deposit([("a.txt", b"a")]).status_code == 403
    anonymous = httpx.get(f"{platform.url}/api/archives/units")
    assert anonymous.status_code == 401
    nobody = as_org(None)
    assert nobody.get("/units").status_code == 403
    viewer = as_staff(("lamentin", "viewer"))
    refused = viewer.deposit([("a.txt", b"a")])
    assert refused.status_code == 403 and "archiviste" in refused.json()["detail"]
    archivist = as_staff(("lamentin", "archivist"))
    assert archivist.deposit([("a.txt", b"a")]).status_code == 201


def test_a_search_offset_past_any_integer_is_invalid_input_not_a_server_error(as_org) -> None:
    """schemathesis sent offset=5e31: the database refused it (500); now a 422 problem."""
    client = as_org("grand-riviere", ["archives:read"])
    huge = client.get("/units", params={"offset": str(10**31)})
    assert huge.status_code == 422, huge.text
    assert huge.headers["content-type"].startswith("application/problem+json")
    largest = client.get("/units", params={"offset": "1000000000"})
    assert largest.status_code == 200, largest.text
    assert largest.json()["items"] == []


def test_a_nul_character_in_a_search_is_not_a_server_error(as_org, backend) -> None:
    """schemathesis sent producer=«…\\x00…»: PostgreSQL's driver refused the text (500); now
    a 400 problem there, and SQLite (which stores NUL) simply finds nothing."""
    client = as_org("macouba", ["archives:read"])
    response = client.get("/units", params={"producer": "ab\x00cd", "q": "x\x00y"})
    if backend.name == "postgres":
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "U+0000" in response.json()["detail"]
    else:
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []
