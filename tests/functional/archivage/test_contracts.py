"""Ingest contracts: formats identified by content, size and file-count limits, attachment
point in the filing plan; a deposit outside its contract is refused with every reason."""

from __future__ import annotations

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


def test_contract_is_enforced_at_deposit(as_org, as_staff) -> None:
    archivist = as_staff(("trinite", "archivist"))
    machine = as_org("trinite")
    plan = archivist.post("/units", json={"title": "Urbanisme", "level": "series"}).json()
    other = archivist.post("/units", json={"title": "Voirie", "level": "series"}).json()
    assert machine.put("/contract", json={"formats": ["fmt/276"]}).status_code == 403
    assert as_staff(("trinite", "viewer")).put("/contract", json={}).status_code == 403
    contract = archivist.put("/contract", json={
        "formats": ["fmt/276", "application/pdf"], "max_file_bytes": 1000, "max_files": 2,
        "attachment_unit": plan["id"], "reason": "convention de dépôt 2026"})
    assert contract.status_code == 200, contract.text
    assert machine.get("/contract").json()["max_files"] == 2

    disguised = machine.deposit([("permis.pdf", b"ceci n'est pas un PDF")])
    assert disguised.status_code == 422
    assert disguised.json()["title"] == "Versement hors contrat"
    assert "identifié par son contenu" in disguised.json()["detail"]

    renamed = machine.deposit([("permis.txt", PDF)])
    assert renamed.status_code == 201, renamed.text
    ack = renamed.json()
    assert ack["files"][0]["format_id"] == "fmt/276"
    assert ack["files"][0]["media_type"] == "application/pdf"
    assert ack["units"][0]["parent"] == plan["id"]  # attached where the contract says

    too_many = machine.deposit([("a.pdf", PDF), ("b.pdf", PDF), ("c.pdf", PDF)])
    assert too_many.status_code == 422 and "3 fichiers pour 2" in too_many.json()["detail"]
    too_big = machine.deposit([("gros.pdf", PDF + b"0" * 2000), ("x.bin", b"\x00\x01")])
    detail = too_big.json()["detail"]
    assert too_big.status_code == 422
    assert "dépasse 1000 octets" in detail and "x.bin" in detail  # every reason at once
    elsewhere = machine.deposit([("p.pdf", PDF)], parent=other["id"])
    assert elsewhere.status_code == 422 and "plan de classement" in elsewhere.json()["detail"]

    assert archivist.put("/contract", json={"reason": "fin de convention"}).status_code == 200
    assert machine.deposit([("libre.txt", b"texte")]).status_code == 201
