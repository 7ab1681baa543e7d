"""WebAuthn passkeys (the ``webauthn`` package): registration, and assertions used either as
the only step of a passwordless sign-in or as a second factor after the password.

The relying party ID is the issuer's host and the expected origin the issuer's origin. Each
ceremony's challenge is kept in the key-value store for five minutes, bound to the browser
that asked for it, and used at most once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from idp.i18n import N_, Msg
from idp.models import User, WebAuthnCredential
from idp.services.factors.common import FactorFailed, clean_name
from plateforme.clock import utcnow
from plateforme.errors import Conflict, NotFound
from plateforme.kv import KeyValueStore

if TYPE_CHECKING:
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

# ``webauthn`` (with pyOpenSSL and its attestation formats: ~6 MB per worker) is imported by
# the functions that use it, the first time a passkey is registered or used, not at start-up.

RP_NAME = "Martinique Connect"
DEFAULT_NAME = N_("Clé d'accès")
CHALLENGE_LIFETIME = 300
TIMEOUT_MS = 120_000
MAX_PASSKEYS = 20
REFUSED = N_("La clé d'accès n'a pas pu être vérifiée.")


@dataclass(frozen=True)
class PasskeyUse:
    """A verified assertion: which credential, whose, and what it proves."""

    credential: WebAuthnCredential
    user_verified: bool

    @property
    def amr(self) -> list[str]:
        """``swk`` for a synchronised passkey, ``hwk`` for one bound to a device; ``mfa`` when
        the authenticator verified the person (PIN or biometrics)."""
        method = "swk" if self.credential.backed_up else "hwk"
        return [method, "mfa"] if self.user_verified else [method]


def _descriptors(credentials: list[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    descriptors = []
    for cred in credentials:
        transports = []
        for name in json.loads(cred.transports or "[]"):
            try:
                transports.append(AuthenticatorTransport(name))
            except ValueError:
                continue
        descriptors.append(PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(cred.credential_id), transports=transports or None))
    return descriptors


class PasskeyService:
    def __init__(self, engine: Engine, store: KeyValueStore, issuer: str) -> None:
        self._engine = engine
        self._store = store
        parts = urlsplit(issuer)
        self.rp_id = parts.hostname or "localhost"
        self.origin = f"{parts.scheme}://{parts.netloc}"

    # --- challenges --------------------------------------------------------------------------

    def _key(self, purpose: str, binding: str) -> str:
        return f"idp:webauthn:{purpose}:{binding}"

    def _remember(self, purpose: str, binding: str, challenge: bytes,
                  user_id: uuid.UUID | None) -> None:
        from webauthn.helpers import bytes_to_base64url

        self._store.set(self._key(purpose, binding), json.dumps({
            "challenge": bytes_to_base64url(challenge),
            "user_id": str(user_id) if user_id else None,
        }), ttl=CHALLENGE_LIFETIME)

    def _take(self, purpose: str, binding: str, user_id: uuid.UUID | None) -> bytes:
        from webauthn.helpers import base64url_to_bytes

        raw = self._store.take(self._key(purpose, binding))
        if raw is None:
            raise FactorFailed(N_("La demande a expiré. Réessayez."))
        state = json.loads(raw)
        if state["user_id"] != (str(user_id) if user_id else None):
            raise FactorFailed(REFUSED)
        return base64url_to_bytes(state["challenge"])

    # --- registration ------------------------------------------------------------------------

    def registration_options(self, user: User, binding: str) -> str:
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        existing = self.list(user.id)
        if len(existing) >= MAX_PASSKEYS:
            raise Conflict(Msg("Vous avez déjà %(count)d clés d'accès.", count=MAX_PASSKEYS))
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=RP_NAME, user_id=user.id.bytes, user_name=user.email,
            user_display_name=user.name, timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=_descriptors(existing),
        )
        self._remember("register", binding, options.challenge, user.id)
        return str(options_to_json(options))

    def register(self, user: User, credential: str, name: str | None,
                 binding: str) -> WebAuthnCredential:
        from webauthn import verify_registration_response
        from webauthn.helpers import bytes_to_base64url
        from webauthn.helpers.exceptions import WebAuthnException

        challenge = self._take("register", binding, user.id)
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin,
            )
            transports = json.loads(credential).get("response", {}).get("transports") or []
        except (WebAuthnException, ValueError, TypeError, AttributeError) as exc:
            raise FactorFailed(N_("La clé d'accès n'a pas pu être enregistrée.")) from exc
        record = WebAuthnCredential(
            user_id=user.id, credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=json.dumps([t for t in transports if isinstance(t, str)][:6]),
            name=clean_name(name, DEFAULT_NAME), backed_up=verified.credential_backed_up,
        )
        with Session(self._engine, expire_on_commit=False) as session:
            taken = session.exec(select(WebAuthnCredential).where(
                WebAuthnCredential.credential_id == record.credential_id)).first()
            if taken is not None:
                raise FactorFailed(N_("Cette clé d'accès est déjà enregistrée."))
            session.add(record)
            session.commit()
        return record

    # --- authentication ----------------------------------------------------------------------

    def authentication_options(self, binding: str, *, user_id: uuid.UUID | None = None) -> str:
        """Options for ``navigator.credentials.get()``. Without ``user_id`` (passwordless), any
        discoverable credential may answer; with it, only that person's passkeys."""
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import UserVerificationRequirement

        allowed = _descriptors(self.list(user_id)) if user_id else []
        options = generate_authentication_options(
            rp_id=self.rp_id, timeout=TIMEOUT_MS, allow_credentials=allowed,
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        self._remember("factor" if user_id else "login", binding, options.challenge, user_id)
        return str(options_to_json(options))

    def authenticate(self, credential: str, binding: str, *,
                     user_id: uuid.UUID | None = None) -> PasskeyUse:
        """Verify an assertion. With ``user_id`` the passkey must be that person's."""
        from webauthn import verify_authentication_response
        from webauthn.helpers import (
            base64url_to_bytes,
            bytes_to_base64url,
            parse_authentication_credential_json,
        )
        from webauthn.helpers.exceptions import WebAuthnException

        challenge = self._take("factor" if user_id else "login", binding, user_id)
        try:
            parsed = parse_authentication_credential_json(credential)
        except (WebAuthnException, ValueError, TypeError, AttributeError) as exc:
            raise FactorFailed(REFUSED) from exc
        credential_id = bytes_to_base64url(parsed.raw_id)
        with Session(self._engine, expire_on_commit=False) as session:
            stored = session.exec(select(WebAuthnCredential).where(
                WebAuthnCredential.credential_id == credential_id)).first()
        if stored is None or (user_id is not None and stored.user_id != user_id):
            raise FactorFailed(REFUSED)
        handle = parsed.response.user_handle
        if handle and handle != stored.user_id.bytes:
            raise FactorFailed(REFUSED)
        try:
            verified = verify_authentication_response(
                credential=parsed, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(stored.public_key),
                credential_current_sign_count=stored.sign_count,
            )
        except WebAuthnException as exc:
            raise FactorFailed(REFUSED) from exc
        with Session(self._engine, expire_on_commit=False) as session:
            record = session.get(WebAuthnCredential, stored.id)
            if record is None:
                raise FactorFailed(REFUSED)
            record.sign_count = verified.new_sign_count
            record.backed_up = verified.credential_backed_up
            record.last_used_at = utcnow()
            session.add(record)
            session.commit()
        return PasskeyUse(credential=record, user_verified=bool(verified.user_verified))

    # --- management --------------------------------------------------------------------------

    def list(self, user_id: uuid.UUID) -> list[WebAuthnCredential]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(
                select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id)
                .order_by(col(WebAuthnCredential.created_at))
            ).all())

    def rename(self, user_id: uuid.UUID, passkey_id: uuid.UUID | str,
               name: str) -> WebAuthnCredential:
        record = self._get(user_id, passkey_id)
        with Session(self._engine, expire_on_commit=False) as session:
            record.name = clean_name(name, DEFAULT_NAME)
            session.add(record)
            session.commit()
        return record

    def remove(self, user_id: uuid.UUID, passkey_id: uuid.UUID | str) -> WebAuthnCredential:
        record = self._get(user_id, passkey_id)
        with Session(self._engine) as session:
            session.exec(delete(WebAuthnCredential).where(  # type: ignore[call-overload]
                col(WebAuthnCredential.id) == record.id))
            session.commit()
        return record

    def _get(self, user_id: uuid.UUID, passkey_id: uuid.UUID | str) -> WebAuthnCredential:
        try:
            pid = uuid.UUID(str(passkey_id))
        except ValueError:
            raise NotFound(N_("Clé d'accès introuvable.")) from None
        with Session(self._engine, expire_on_commit=False) as session:
            record = session.get(WebAuthnCredential, pid)
        if record is None or record.user_id != user_id:
            raise NotFound(N_("Clé d'accès introuvable."))
        return record

