"""The provider's services wired together from the platform's settings and stores."""

from __future__ import annotations

import hashlib
import logging
import uuid

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp.keys import KeyCipher
from idp.models import Client
from idp.services.accounts import AccountService
from idp.services.brokering import BrokeringService
from idp.services.clients import ClientService
from idp.services.consents import ConsentService
from idp.services.factors import FactorReset, FactorService
from idp.services.logout import BackchannelNotifier, LogoutDelivery
from idp.services.mandates import MandateService
from idp.services.organisations import OrganisationService
from idp.services.sessions import SessionStore, SSOSession
from idp.services.signing_keys import KeyService
from idp.services.subjects import SubjectResolver
from idp.services.throttle import Throttle
from idp.services.tokens import TokenService
from idp.services.users import UserService
from plateforme.audit import AuditJournal, AuditRecord, append
from plateforme.kv import KeyValueStore
from plateforme.mail import make_mailer
from plateforme.settings import Settings

log = logging.getLogger(__name__)


class Provider:
    """Every service of the OpenID provider, built once per application."""

    def __init__(
        self, *, settings: Settings, engine: Engine, store: KeyValueStore,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.issuer = settings.issuer
        self.engine = engine
        self.store = store
        secret = settings.resolved_secret_key()
        self.journal = AuditJournal(engine)
        self.mailer = make_mailer(settings.smtp_url, settings.data_dir, sender=settings.mail_from)
        self.keys = KeyService(
            engine, KeyCipher(secret),
            max_token_lifetime=max(settings.access_token_lifetime, settings.id_token_lifetime),
            store=store,
        )
        self.clients = ClientService(engine)
        self.consents = ConsentService(engine)
        self.organisations = OrganisationService(engine)
        self.throttle = Throttle(
            store, free_attempts=settings.login_free_attempts,
            address_free_attempts=settings.address_free_attempts,
            max_delay=settings.login_max_delay,
        )
        self.users = UserService(engine, self.throttle)
        self.factors = FactorService(
            engine, store, secret_key=secret, issuer=settings.issuer, journal=self.journal,
            free_attempts=settings.login_free_attempts,
            address_free_attempts=settings.address_free_attempts,
            max_delay=settings.login_max_delay,
        )
        self.tokens = TokenService(
            engine, store, code_lifetime=settings.code_lifetime,
            refresh_token_lifetime=settings.refresh_token_lifetime,
        )
        self.sessions = SessionStore(
            store, lifetime=settings.session_lifetime, idle_timeout=settings.session_idle_timeout
        )
        self.subjects = SubjectResolver(
            hashlib.sha256(("pairwise:" + secret).encode()).digest()
        )
        self.notifier = BackchannelNotifier(
            issuer=settings.issuer, keys=self.keys, journal=self.journal,
            default_alg=settings.signing_alg, timeout=settings.backchannel_logout_timeout,
            retries=settings.backchannel_logout_retries, http=http,
        )
        self.accounts = AccountService(self)
        self.brokering = BrokeringService(engine, self.journal)
        self.mandates = MandateService(engine, self.journal)

    def subject_for(self, user_id: object, client: Client) -> str:
        return self.subjects.subject(uuid.UUID(str(user_id)), client)

    def end_session(
        self, sso: SSOSession, *, reason: str = "logout", address: str | None = None,
        request_id: str | None = None, except_client: str | None = None,
    ) -> list[object]:
        """End an SSO session: revoke its online grants, forget it, and tell every client that
        registered a back-channel logout URI. Never waits for the clients."""
        self.sessions.end(sso)
        self.tokens.end_session_grants(sso.sid)
        # The person's own session at each client, then each delegated session (acting for
        # a mandator: the mandator's subject, the delegated session's own ``sid``).
        ended = [(client_id, sso.user_id, sso.sid) for client_id in sso.clients]
        for entry in sso.delegations:
            self.tokens.end_session_grants(entry["sid"])
            ended.append((entry["client"], entry["user"], entry["sid"]))
        deliveries = []
        for client_id, user_id, sid in ended:
            client = self.clients.get(client_id)
            if client is None or not client.backchannel_logout_uri or client_id == except_client:
                continue
            token = self.notifier.logout_token(
                client, sub=self.subject_for(user_id, client), sid=sid
            )
            deliveries.append(LogoutDelivery(client_id, client.backchannel_logout_uri, token))
        with Session(self.engine) as session:
            append(session, AuditRecord(
                action="logout", actor=sso.user_id, address=address, request_id=request_id,
                reason=reason, details={"clients": sso.clients},
            ))
            session.commit()
        return self.notifier.notify(deliveries)

    def end_all_sessions(self, user_id: uuid.UUID | str, *, reason: str, actor: str | None = None,
                         address: str | None = None) -> int:
        """End every session of a person and revoke every grant (offline ones included)."""
        uid = uuid.UUID(str(user_id))
        sessions = self.sessions.for_user(uid)
        for sso in sessions:
            self.end_session(sso, reason=reason, address=address)
        for grant_id in self.tokens.user_grant_ids(uid):
            self.tokens.revoke_grant(grant_id, reason=reason, actor=actor)
        return len(sessions)

    def end_sessions(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str,
                     address: str | None = None) -> int:
        """An operator ends every session of a person (tokens revoked, clients told); the
        journal records who did it and why."""
        ended = self.end_all_sessions(user_id, reason="sessions_ended", actor=actor,
                                      address=address)
        self.journal.record(AuditRecord(
            action="user.end_sessions", actor=actor, target=str(user_id), reason=reason,
            address=address, details={"sessions": ended}))
        return ended

    def lock_user(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str,
                  address: str | None = None) -> None:
        """Lock an account: sign-in refused, sessions ended, tokens revoked."""
        self.users.set_locked(user_id, True, actor=actor, reason=reason)
        self.end_all_sessions(user_id, reason="account_locked", actor=actor, address=address)

    def unlock_user(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str) -> None:
        self.users.set_locked(user_id, False, actor=actor, reason=reason)

    def reset_second_factors(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str,
                             address: str | None = None) -> FactorReset:
        """An operator resets the second factors of a person who lost them: every
        authenticator app, passkey and recovery code removed (journaled with the operator and
        the reason), every session ended and every token revoked (clients told), and the
        person told by email how to add new ones. The password is left as it is."""
        user = self.users.require(user_id)
        removed = self.factors.reset_all(user.id, actor=actor, reason=reason, address=address)
        self.end_all_sessions(user.id, reason="factors_reset", actor=actor, address=address)
        self.accounts.mail.send("factors_reset", to=user.email, locale=user.locale,
                                link=self.issuer + "/compte/securite",
                                name=user.given_name or "")
        return removed

    def delete_user(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str) -> None:
        """Delete an account: sessions ended, clients told (back-channel), data erased; the
        audit journal keeps the (pseudonymous) account id only."""
        self.end_all_sessions(user_id, reason="account_deleted", actor=actor)
        self.users.delete(user_id, actor=actor, reason=reason)

    def revoke_consent(self, user_id: uuid.UUID | str, client_id: str, *, actor: str | None,
                       reason: str | None = None) -> None:
        """Withdraw a consent and revoke the tokens the client holds for the person."""
        uid = uuid.UUID(str(user_id))
        self.consents.revoke(uid, client_id, actor=actor, reason=reason)
        for grant_id in self.tokens.user_grant_ids(uid, client_id=client_id):
            self.tokens.revoke_grant(grant_id, reason="consent_revoked", actor=actor)

    def revoke_mandate(self, mandate_id: uuid.UUID | str, by: uuid.UUID | str, *,
                       as_operator: bool = False, address: str | None = None,
                       request_id: str | None = None, reason: str | None = None
                       ) -> list[object]:
        """The mandator withdraws a mandate: every delegated grant made under it is revoked
        at once (access tokens inactive at introspection, refresh tokens refused) and each
        client told through back-channel logout (``sub``: the mandator as that client knows
        them, ``sid``: the mandatary's delegated session at that client, never their own)."""
        mandate = self.mandates.revoke(mandate_id, by, as_operator=as_operator, address=address,
                                       request_id=request_id, reason=reason)
        deliveries = []
        told: set[tuple[str, str]] = set()
        for grant_id, client_id, sid in self.mandates.grant_ids(mandate.id):
            self.tokens.revoke_grant(grant_id, reason="mandate_revoked", actor=str(by))
            client = self.clients.get(client_id)
            if (client is None or not client.backchannel_logout_uri or not sid
                    or (client_id, sid) in told):
                continue  # one logout token per delegated session, however many grants
            told.add((client_id, sid))
            token = self.notifier.logout_token(
                client, sub=self.subject_for(mandate.mandator_id, client), sid=sid)
            deliveries.append(LogoutDelivery(client_id, client.backchannel_logout_uri, token))
        return self.notifier.notify(deliveries)

    def close(self) -> None:
        self.accounts.close()
        self.notifier.close()
