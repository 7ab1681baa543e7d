"""Subject identifiers (OpenID Connect Core §8): pairwise by default, public on request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from idp.models import Client
from idp.services.clients import sector_of


class SubjectResolver:
    """Computes the ``sub`` a client sees for a person."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt

    def subject(self, user_id: uuid.UUID, client: Client) -> str:
        if client.subject_type == "public":
            return str(user_id)
        mac = hmac.new(self._salt, f"{sector_of(client)}|{user_id}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
