"""Second factors of a person, as the pages use them: enrolment and removal (audited), and
checks at sign-in with per-account and per-address throttling (lockouts audited)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, exists, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, func, select

from idp.i18n import N_
from idp.models import RecoveryCode, TotpFactor, User, WebAuthnCredential
from idp.services.factors.common import FactorFailed
from idp.services.factors.passkeys import PasskeyService, PasskeyUse
from idp.services.factors.recovery import RecoveryCodes
from idp.services.factors.totp import WRONG_CODE, TotpEnrolment, TotpService
from idp.services.throttle import Throttle
from plateforme.audit import AuditJournal, AuditRecord
from plateforme.clock import Clock
from plateforme.db import reader
from plateforme.errors import Conflict, NotFound, TooManyRequests
from plateforme.kv import KeyValueStore

Method = Literal["totp", "recovery", "passkey"]
METHODS: tuple[Method, ...] = ("totp", "recovery", "passkey")
THROTTLED = N_("Trop de tentatives. Réessayez dans quelques instants.")
FAILURES = {
    "totp": WRONG_CODE,
    "recovery": N_("Code de secours incorrect ou déjà utilisé."),
    "passkey": N_("La clé d'accès n'a pas pu être vérifiée."),
}

# What the account's activity page (``/compte/activite``) shows for each event of the audit
# journal whose actor is the person: the one place for every label, so that no event is
# shown by its technical name (a unit test checks that each action written has one).
ACTIVITY_LABELS = {
    # signing in and out
    "login.success": "Connexion",
    "login.failure": N_("Échec de connexion"),
    "login.throttled": N_("Tentative refusée (trop d'essais)"),
    "login.factor.failure": N_("Échec du second facteur"),
    "login.lockout": N_("Connexion bloquée temporairement après plusieurs échecs"),
    "login.stepup": N_("Connexion renforcée"),
    "logout": "Déconnexion",
    "logout.backchannel_failed": N_("Déconnexion d'un service non confirmée"),
    # second factors
    "mfa.totp.enrol": N_("Application d'authentification ajoutée"),
    "mfa.totp.rename": N_("Application d'authentification renommée"),
    "mfa.totp.remove": N_("Application d'authentification supprimée"),
    "mfa.passkey.enrol": N_("Clé d'accès ajoutée"),
    "mfa.passkey.rename": N_("Clé d'accès renommée"),
    "mfa.passkey.remove": N_("Clé d'accès supprimée"),
    "mfa.recovery.generate": N_("Nouveaux codes de secours"),
    "mfa.recovery.use": N_("Code de secours utilisé"),
    "mfa.recovery.clear": N_("Codes de secours supprimés (plus de second facteur)"),
    # the account
    "account.register": N_("Création du compte"),
    "account.register_existing": N_("Tentative de création d'un compte avec votre adresse"),
    "account.verify_email": N_("Confirmation de l'adresse électronique"),
    "account.purge_unconfirmed": N_("Suppression d'un compte jamais confirmé"),
    "account.verification_resent": N_("Nouveau lien de confirmation demandé"),
    "account.export": N_("Téléchargement de vos données"),
    "account.delete": N_("Suppression du compte"),
    "password.reset_request": N_("Demande de réinitialisation du mot de passe"),
    "password.reset": N_("Réinitialisation du mot de passe"),
    "password.change": N_("Changement du mot de passe"),
    "profile.update": N_("Modification du profil"),
    "email.change_request": N_("Demande de changement d'adresse électronique"),
    "email.change": N_("Changement d'adresse électronique"),
    "session.end": N_("Fermeture d'une session"),
    "session.end_others": N_("Fermeture des autres sessions"),
    "consent.grant": N_("Autorisation donnée à un service"),
    "consent.implied": N_("Première connexion à un service de la Collectivité"),
    "consent.revoke": N_("Autorisation retirée à un service"),
    "application.revoke": N_("Accès d'un service retiré"),
    "token.revoke_grant": N_("Révocation de l'accès d'un service"),
    "membership.accept": N_("Acceptation d'une invitation dans une organisation"),
    # what a staff member did in the administration console
    "admin.sign_in": N_("Connexion à la console d'administration"),
    "admin.sign_out": N_("Déconnexion de la console d'administration"),
    "admin.refused": N_("Action refusée dans la console d'administration"),
    "admin.failed": N_("Action non aboutie dans la console d'administration"),
    "audit.export": N_("Export du journal d'audit"),
    "client.create": N_("Enregistrement d'une application cliente"),
    "client.update": N_("Modification d'une application cliente"),
    "client.rotate_secret": N_("Nouveau secret pour une application cliente"),
    "client.disable": N_("Désactivation d'une application cliente"),
    "client.enable": N_("Réactivation d'une application cliente"),
    "client.delete": N_("Suppression d'une application cliente"),
    "user.create": N_("Création d'un compte (administration)"),
    "user.lock": N_("Verrouillage d'un compte (administration)"),
    "user.unlock": N_("Déverrouillage d'un compte (administration)"),
    "user.end_sessions": N_("Fermeture des sessions d'un compte (administration)"),
    "user.reset_factors": N_("Réinitialisation des seconds facteurs d'un compte (administration)"),
    "user.delete": N_("Suppression d'un compte (administration)"),
    "organisation.create": N_("Création d'une organisation"),
    "membership.grant": N_("Attribution d'un rôle dans une organisation"),
    "membership.revoke": N_("Retrait d'un rôle dans une organisation"),
    "membership.invite": N_("Invitation d'une personne dans une organisation"),
    "key.rotate": N_("Renouvellement des clés de signature"),
    "key.retire": N_("Retrait d'une clé de signature"),
    # the archival service (archivage)
    "archives.export": "Export d'archives (BagIt)",
    "archives.virus": "Versement refusé : fichier infecté",
    "archives.contract": "Modification d'un contrat d'entrée des archives",
    "archives.deposit": "Versement d'archives",
    "archives.unit.create": "Création d'une unité d'archives",
    "archives.elimination.propose": "Proposition d'élimination d'archives",
    "archives.elimination.visa": "Visa d'un bordereau d'élimination",
    "archives.elimination.execute": "Élimination d'archives exécutée",
    "archives.audit": "Audit d'intégrité des archives",
    "archives.package": "Versement d'un paquet (BagIt ou SEDA)",
    "archives.rules.import": "Import du référentiel des règles de gestion",
    "archives.space.quota": "Quota d'un espace d'archives",
    "archives.space.close": "Fermeture d'un espace d'archives",
    "archives.download": "Consultation d'un document archivé",
    "archives.share": "Partage d'archives avec une autre organisation",
    "archives.rules.change": "Modification des règles d'une unité d'archives",
    "archives.share.revoke": "Fin d'un partage d'archives",
    # the service catalogue (services_mutualises)
    "services.site.create": "Création d'un site",
    "services.catalogue.version_create": "Nouvelle version d'une offre du catalogue",
    "services.catalogue.sharing_rule": "Nouvelle clé de répartition des coûts",
    "services.subscription.secret_shown": "Identifiants d'un service affichés",
    "services.statement.issue": "Émission d'un relevé mensuel",
    "services.order.sweep": "Reprise d'une commande interrompue",
    "services.fibre.sweep": "Libération de paires de fibre orphelines",
    "services.catalogue.seed": "Initialisation du catalogue",
    "services.subscription.modify": "Modification d'un abonnement",
    # FranceConnect and delegation (procurations)
    "franceconnect.login": N_("Connexion avec FranceConnect"),
    "franceconnect.link": N_("Compte relié à FranceConnect"),
    "mandate.create": N_("Procuration donnée"),
    "mandate.request": N_("Demande de procuration par un médiateur"),
    "mandate.confirm": N_("Procuration confirmée par code"),
    "mandate.revoke": N_("Procuration retirée"),
    "delegation.login": N_("Connexion pour le compte d'une autre personne"),
}


# Asked at every password sign-in: built once.
_HAS_SECOND_FACTOR = sa_select(or_(
    exists().where(col(TotpFactor.user_id) == bindparam("user_id"), col(TotpFactor.confirmed)),
    exists().where(col(WebAuthnCredential.user_id) == bindparam("user_id")),
))


@dataclass(frozen=True)
class FactorSummary:
    totp: list[TotpFactor]
    passkeys: list[WebAuthnCredential]
    recovery_remaining: int

    @property
    def has_second_factor(self) -> bool:
        return bool(self.totp or self.passkeys)

    @property
    def methods(self) -> list[Method]:
        """What may be asked as a second factor, in the order the page offers them."""
        methods: list[Method] = []
        if self.totp:
            methods.append("totp")
        if self.passkeys:
            methods.append("passkey")
        if self.has_second_factor and self.recovery_remaining:
            methods.append("recovery")
        return methods


@dataclass(frozen=True)
class FactorReset:
    """What :meth:`FactorService.reset_all` removed."""

    totp: int
    passkeys: int
    recovery_codes: int

    @property
    def total(self) -> int:
        return self.totp + self.passkeys + self.recovery_codes


@dataclass(frozen=True)
class Origin:
    """Where a request comes from, for throttling and the journal."""

    address: str
    request_id: str | None = None


class FactorService:
    def __init__(
        self, engine: Engine, store: KeyValueStore, *, secret_key: str, issuer: str,
        journal: AuditJournal, free_attempts: int = 5, address_free_attempts: int = 30,
        max_delay: int = 900, clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._journal = journal
        self.totp = TotpService(engine, secret_key, clock=clock)
        self.recovery = RecoveryCodes(engine, secret_key)
        self.passkeys = PasskeyService(engine, store, issuer)
        self.throttles = {
            method: Throttle(store, kind=method, free_attempts=free_attempts,
                             address_free_attempts=address_free_attempts, max_delay=max_delay)
            for method in (*METHODS, "passwordless")
        }

    # --- what a person has -------------------------------------------------------------------

    def summary(self, user_id: uuid.UUID) -> FactorSummary:
        return FactorSummary(
            totp=self.totp.list(user_id), passkeys=self.passkeys.list(user_id),
            recovery_remaining=self.recovery.remaining(user_id),
        )

    def has_second_factor(self, user_id: uuid.UUID) -> bool:
        """Asked at every password sign-in: one ``SELECT EXISTS … OR EXISTS …``, no rows read."""
        with self._reader.connect() as conn:
            return bool(conn.execute(_HAS_SECOND_FACTOR, {"user_id": user_id}).scalar())

    # --- checks at sign-in -------------------------------------------------------------------

    def verify(self, user: User, method: str, value: str, *, origin: Origin,
               binding: str = "") -> list[str]:
        """Check one second factor of ``user``; return its ``amr``. Raises
        :class:`FactorFailed` (wrong, replayed, used) or ``TooManyRequests`` (throttled)."""
        if method not in METHODS:
            raise FactorFailed(N_("Méthode inconnue."))
        throttle = self.throttles[method]
        account = str(user.id)
        wait = throttle.retry_after(account, origin.address)
        if wait:
            self._audit("login.throttled", user.id, origin, outcome="refused",
                        details={"factor": method})
            raise TooManyRequests(THROTTLED, retry_after=wait)
        amr: list[str] | None = None
        if method == "totp":
            amr = ["otp"] if self.totp.verify(user.id, value) is not None else None
        elif method == "recovery":
            amr = ["otp"] if self.recovery.use(user.id, value) else None
        else:
            try:
                amr = self.passkeys.authenticate(value, binding, user_id=user.id).amr
            except FactorFailed:
                amr = None
        if amr is None:
            self._failure(throttle, account, user.id, method, origin)
            raise FactorFailed(FAILURES[method])
        throttle.success(account, origin.address)
        if method == "recovery":
            self._audit("mfa.recovery.use", user.id, origin,
                        details={"remaining": self.recovery.remaining(user.id)})
        return amr

    def passwordless(self, credential: str, *, origin: Origin, binding: str
                     ) -> tuple[User, PasskeyUse]:
        """A sign-in with a passkey alone. Throttled per address (the account is not known
        before the check)."""
        throttle = self.throttles["passwordless"]
        # The account is unknown before the check: count per address only (a shared key
        # would let anyone lock every passkey sign-in out).
        key = f"passwordless:{origin.address}"
        wait = throttle.retry_after(key, origin.address)
        if wait:
            self._audit("login.throttled", None, origin, outcome="refused",
                        details={"factor": "passkey"})
            raise TooManyRequests(THROTTLED, retry_after=wait)
        try:
            use = self.passkeys.authenticate(credential, binding)
            with Session(self._engine, expire_on_commit=False) as session:
                user = session.get(User, use.credential.user_id)
            if user is None or user.locked:
                raise FactorFailed(FAILURES["passkey"])
        except FactorFailed:
            self._failure(throttle, key, None, "passkey", origin)
            raise
        throttle.success(key, origin.address)
        return user, use

    def _failure(self, throttle: Throttle, account: str, user_id: uuid.UUID | None, method: str,
                 origin: Origin) -> None:
        delay = throttle.failure(account, origin.address)
        self._audit("login.factor.failure", user_id, origin, outcome="failure",
                    details={"factor": method})
        if delay:
            self._audit("login.lockout", user_id, origin, outcome="refused",
                        details={"factor": method, "delay": delay})

    # --- enrolment and management (each audited) ---------------------------------------------

    def begin_totp(self, user: User) -> TotpEnrolment:
        return self.totp.begin(user)

    def confirm_totp(self, user: User, factor_id: str, code: str, name: str | None, *,
                     origin: Origin) -> list[str] | None:
        """Confirm a new TOTP factor with its first code. Returns the new recovery codes when
        this is the person's first second factor (shown once), else None."""
        throttle = self.throttles["totp"]
        wait = throttle.retry_after(str(user.id), origin.address)
        if wait:
            raise TooManyRequests(THROTTLED, retry_after=wait)
        first = not self.has_second_factor(user.id)
        try:
            factor = self.totp.confirm(user.id, factor_id, code, name)
        except FactorFailed:
            throttle.failure(str(user.id), origin.address)
            raise
        throttle.success(str(user.id), origin.address)
        self._audit("mfa.totp.enrol", user.id, origin, target=str(factor.id),
                    details={"name": factor.name})
        return self._first_codes(user, origin) if first else None

    def rename_totp(self, user: User, factor_id: str, name: str, *, origin: Origin) -> None:
        factor = self.totp.rename(user.id, factor_id, name)
        self._audit("mfa.totp.rename", user.id, origin, target=str(factor.id),
                    details={"name": factor.name})

    def remove_totp(self, user: User, factor_id: str, *, origin: Origin) -> None:
        factor = self.totp.remove(user.id, factor_id)
        self._audit("mfa.totp.remove", user.id, origin, target=str(factor.id),
                    details={"name": factor.name})
        self._forget_codes_if_alone(user, origin)

    def passkey_registration_options(self, user: User, binding: str) -> str:
        return self.passkeys.registration_options(user, binding)

    def register_passkey(self, user: User, credential: str, name: str | None, *,
                         origin: Origin, binding: str) -> list[str] | None:
        first = not self.has_second_factor(user.id)
        record = self.passkeys.register(user, credential, name, binding)
        self._audit("mfa.passkey.enrol", user.id, origin, target=str(record.id),
                    details={"name": record.name, "backed_up": record.backed_up})
        return self._first_codes(user, origin) if first else None

    def rename_passkey(self, user: User, passkey_id: str, name: str, *,
                       origin: Origin) -> None:
        record = self.passkeys.rename(user.id, passkey_id, name)
        self._audit("mfa.passkey.rename", user.id, origin, target=str(record.id),
                    details={"name": record.name})

    def remove_passkey(self, user: User, passkey_id: str, *, origin: Origin) -> None:
        record = self.passkeys.remove(user.id, passkey_id)
        self._audit("mfa.passkey.remove", user.id, origin, target=str(record.id),
                    details={"name": record.name})
        self._forget_codes_if_alone(user, origin)

    def regenerate_recovery_codes(self, user: User, *, origin: Origin) -> list[str]:
        if not self.has_second_factor(user.id):
            raise Conflict(N_("Ajoutez d'abord une application d'authentification ou une clé "
                           "d'accès : les codes de secours les remplacent en cas de perte."))
        codes = self.recovery.generate(user.id)
        self._audit("mfa.recovery.generate", user.id, origin, details={"count": len(codes)})
        return codes

    def reset_all(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str,
                  address: str | None = None) -> FactorReset:
        """An operator removes every second factor of a person who lost them: authenticator
        apps (pending ones too), passkeys and recovery codes, in one transaction, journaled
        with who did it and why. Refused (``Conflict``) when there is nothing to remove.
        Ending the sessions and telling the person is :meth:`Provider.reset_second_factors`'
        part."""
        uid = uuid.UUID(str(user_id))
        with Session(self._engine) as session:
            if session.get(User, uid) is None:
                raise NotFound("compte introuvable")
            counts = FactorReset(
                totp=self._count(session, TotpFactor, uid, confirmed_only=True),
                passkeys=self._count(session, WebAuthnCredential, uid),
                recovery_codes=self._count(session, RecoveryCode, uid),
            )
            if not counts.total:
                raise Conflict(N_("Ce compte n'a aucun second facteur : il n'y a rien à "
                               "réinitialiser."))
            for model in (TotpFactor, WebAuthnCredential, RecoveryCode):
                session.exec(delete(model).where(  # type: ignore[call-overload]
                    col(model.user_id) == uid))
            session.commit()
        self._journal.record(AuditRecord(
            action="user.reset_factors", actor=actor, target=str(uid), reason=reason,
            address=address, details={"totp": counts.totp, "passkeys": counts.passkeys,
                                      "recovery_codes": counts.recovery_codes}))
        return counts

    @staticmethod
    def _count(session: Session, model: type[TotpFactor] | type[WebAuthnCredential]
               | type[RecoveryCode], user_id: uuid.UUID, *, confirmed_only: bool = False) -> int:
        query = select(func.count()).select_from(model).where(col(model.user_id) == user_id)
        if confirmed_only:
            query = query.where(col(TotpFactor.confirmed))
        return int(session.exec(query).one())

    def _first_codes(self, user: User, origin: Origin) -> list[str] | None:
        if self.recovery.remaining(user.id):
            return None
        return self.regenerate_recovery_codes(user, origin=origin)

    def _forget_codes_if_alone(self, user: User, origin: Origin) -> None:
        """Recovery codes replace a second factor: without any, they would be a password."""
        if not self.has_second_factor(user.id) and self.recovery.remaining(user.id):
            self.recovery.clear(user.id)
            self._audit("mfa.recovery.clear", user.id, origin)

    def _audit(self, action: str, user_id: uuid.UUID | None, origin: Origin, *,
               outcome: str = "success", target: str | None = None,
               details: dict[str, object] | None = None) -> None:
        self._journal.record(AuditRecord(
            action=action, actor=str(user_id) if user_id else None, target=target,
            address=origin.address, request_id=origin.request_id, outcome=outcome,
            details=details,
        ))
