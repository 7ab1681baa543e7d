"""Journey of the archival service (``/api/archives/…``), as an organisation's document
management software does it: a ``client_credentials`` token acting for the organisation, a
deposit (``multipart/form-data``, announced SHA-256 digests), the download of one of the
deposited files with its ``Repr-Digest`` checked, and a search that finds the deposit.

One complete journey per iteration, reported to locust as a ``JOURNEY`` entry (see
``common.Journey``) beside the statistics of every request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from common import Journey, JourneyFailed, bearer, client_credentials, config
from locust import TaskSet, task

ARCHIVE = "archivage (jeton, versement de 2 fichiers, telechargement, recherche)"
REPORTED = [ARCHIVE]  # the JOURNEY entries this module reports
SCOPE = "archives:read archives:write"
# The deposited files: a short text (full-text indexed) and a small binary.
TEXT_BYTES = 2_000
BINARY_BYTES = 16_000


def digest_of(header: str, algorithm: str) -> bytes | None:
    """The value of ``algorithm`` in a ``Repr-Digest`` header (RFC 9530:
    ``sha-512=:base64:, sha-256=:base64:``)."""
    for member in header.split(","):
        name, _, value = member.strip().partition("=")
        if name == algorithm and value.startswith(":") and value.endswith(":"):
            return base64.b64decode(value[1:-1])
    return None


class ArchiveDepositAndDownload(TaskSet):
    """Token, deposit of two small files (one dossier with two items), download of the text
    (its body and ``Repr-Digest`` SHA-256 compared with what was sent), search by a word of
    the deposit's title (the deposit must be among the results)."""

    @task
    def deposit_download_search(self) -> None:
        cfg = config()
        api = cfg.issuer + "/api/archives"
        marker = "charge" + secrets.token_hex(6)  # a word only this deposit's title holds
        text = (f"Délibération {marker} du conseil municipal. "
                * (TEXT_BYTES // 48 + 1))[:TEXT_BYTES].encode()
        binary = secrets.token_bytes(BINARY_BYTES)
        with Journey(self.user, ARCHIVE) as journey:
            token = client_credentials(journey, cfg, cfg.archives_client, SCOPE)
            metadata = {
                "title": f"Versement de charge {marker}", "producer": "Secrétariat général",
                "document_type": "délibération", "language": "fr",
                "files": [{"sha256": hashlib.sha256(data).hexdigest()}
                          for data in (text, binary)],
            }
            ack = journey.call(
                "POST", api + "/deposits", expect=(201,), name="/api/archives/deposits",
                headers={**bearer(token), "Idempotency-Key": "charge-" + marker},
                files=[("metadata", (None, json.dumps(metadata), "application/json")),
                       ("file", ("deliberation.txt", text, "text/plain")),
                       ("file", ("annexe.bin", binary, "application/octet-stream"))],
            ).json()
            deposited = {f["filename"]: f for f in ack.get("files", [])}
            if set(deposited) != {"deliberation.txt", "annexe.bin"}:
                raise JourneyFailed(f"acknowledgement lists {sorted(deposited)}")
            item = deposited["deliberation.txt"]
            response = journey.call(
                "GET", f"{api}/units/{item['unit_id']}/objects/{item['object_id']}/content",
                expect=(200,), name="/api/archives/units/{id}/objects/{id}/content",
                headers=bearer(token))
            announced = digest_of(response.headers.get("repr-digest", ""), "sha-256")
            if announced != hashlib.sha256(text).digest():
                raise JourneyFailed("Repr-Digest does not carry the deposited file's SHA-256")
            if response.content != text:
                raise JourneyFailed("the downloaded file differs from the deposited one")
            found = journey.call("GET", f"{api}/units", expect=(200,),
                                 name="/api/archives/units?q=", headers=bearer(token),
                                 params={"q": marker, "limit": 10}).json()
            top = ack["units"][0]["id"]
            if top not in {unit["id"] for unit in found.get("items", [])}:
                raise JourneyFailed("the search does not find the deposit")
