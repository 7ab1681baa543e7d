"""The messages the account pages send, in French and English (the account's language).

Each message is rendered twice, as plain text (``email_message.txt``) and as HTML
(``email_message.html``), from the same paragraphs and action link. Sending happens on a
small thread pool, so that no answer waits for the mail server: the time a page takes never
tells whether a message was sent (no account enumeration by timing).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from plateforme.mail import Mailer

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@dataclass(frozen=True)
class MessageText:
    subject: str
    greeting: str
    paragraphs: tuple[str, ...]
    action: str | None = None
    closing: str = ""


_FR_CLOSING = ("Ce message vous est envoyé automatiquement par Martinique Connect, le compte "
               "unique des services en ligne de la Collectivité Territoriale de Martinique. "
               "Merci de ne pas y répondre.")
_EN_CLOSING = ("This message was sent automatically by Martinique Connect, the single account "
               "for the online services of the Collectivité Territoriale de Martinique. Please "
               "do not reply.")

MESSAGES: dict[str, dict[str, MessageText]] = {
    "verify": {
        "fr": MessageText(
            "Confirmez votre adresse électronique", "Bonjour {name},",
            ("Vous venez de créer votre compte Martinique Connect. Pour l'activer, confirmez "
             "votre adresse électronique en ouvrant le lien ci-dessous.",
             "Ce lien ne sert qu'une fois et reste valable {hours} heures.",
             "Si vous n'avez pas créé de compte, ignorez ce message : aucun compte ne sera "
             "activé."),
            "Confirmer mon adresse", _FR_CLOSING),
        "en": MessageText(
            "Confirm your email address", "Hello {name},",
            ("You have just created your Martinique Connect account. To activate it, confirm "
             "your email address by opening the link below.",
             "This link works once and stays valid for {hours} hours.",
             "If you did not create an account, ignore this message: no account will be "
             "activated."),
            "Confirm my address", _EN_CLOSING),
    },
    "exists": {
        "fr": MessageText(
            "Tentative de création de compte avec votre adresse", "Bonjour {name},",
            ("Quelqu'un, peut-être vous, a demandé à créer un compte Martinique Connect avec "
             "cette adresse électronique. Un compte existe déjà avec cette adresse : aucun "
             "nouveau compte n'a été créé et rien n'a été modifié.",
             "Si c'était vous, connectez-vous avec votre mot de passe habituel. Vous l'avez "
             "oublié ? Choisissez-en un nouveau avec le lien ci-dessous.",
             "Si ce n'était pas vous, vous pouvez ignorer ce message."),
            "Choisir un nouveau mot de passe", _FR_CLOSING),
        "en": MessageText(
            "Attempt to create an account with your address", "Hello {name},",
            ("Someone, perhaps you, asked to create a Martinique Connect account with this "
             "email address. An account already exists with this address: no new account "
             "was created and nothing was changed.",
             "If it was you, sign in with your usual password. Forgot it? Choose a new one "
             "with the link below.",
             "If it was not you, you can ignore this message."),
            "Choose a new password", _EN_CLOSING),
    },
    "reset": {
        "fr": MessageText(
            "Choisir un nouveau mot de passe", "Bonjour {name},",
            ("Une demande de réinitialisation du mot de passe de votre compte Martinique "
             "Connect a été faite. Pour choisir un nouveau mot de passe, ouvrez le lien "
             "ci-dessous.",
             "Ce lien ne sert qu'une fois et reste valable {minutes} minutes. Une fois le mot "
             "de passe changé, toutes vos sessions ouvertes seront fermées.",
             "Si vous n'avez rien demandé, ignorez ce message : votre mot de passe reste le "
             "même."),
            "Choisir un nouveau mot de passe", _FR_CLOSING),
        "en": MessageText(
            "Choose a new password", "Hello {name},",
            ("Someone asked to reset the password of your Martinique Connect account. To "
             "choose a new password, open the link below.",
             "This link works once and stays valid for {minutes} minutes. Once the password "
             "is changed, every open session will be closed.",
             "If you did not ask for anything, ignore this message: your password stays the "
             "same."),
            "Choose a new password", _EN_CLOSING),
    },
    "password_changed": {
        "fr": MessageText(
            "Votre mot de passe a été modifié", "Bonjour {name},",
            ("Le mot de passe de votre compte Martinique Connect vient d'être modifié, et vos "
             "autres sessions ont été fermées.",
             "Si ce n'est pas vous, choisissez immédiatement un nouveau mot de passe avec le "
             "lien ci-dessous, puis consultez l'activité de votre compte."),
            "Choisir un nouveau mot de passe", _FR_CLOSING),
        "en": MessageText(
            "Your password was changed", "Hello {name},",
            ("The password of your Martinique Connect account was just changed, and your "
             "other sessions were closed.",
             "If this was not you, choose a new password at once with the link below, then "
             "review your account's activity."),
            "Choose a new password", _EN_CLOSING),
    },
    "email_change": {
        "fr": MessageText(
            "Confirmez votre nouvelle adresse électronique", "Bonjour {name},",
            ("Vous avez demandé à utiliser cette adresse pour votre compte Martinique "
             "Connect. Pour confirmer ce changement, ouvrez le lien ci-dessous.",
             "Ce lien ne sert qu'une fois et reste valable {hours} heures. Tant que vous ne "
             "l'avez pas ouvert, votre ancienne adresse reste celle du compte.",
             "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message."),
            "Confirmer ma nouvelle adresse", _FR_CLOSING),
        "en": MessageText(
            "Confirm your new email address", "Hello {name},",
            ("You asked to use this address for your Martinique Connect account. To confirm "
             "the change, open the link below.",
             "This link works once and stays valid for {hours} hours. Until you open it, your "
             "previous address remains the account's.",
             "If you did not ask for this, ignore this message."),
            "Confirm my new address", _EN_CLOSING),
    },
    "email_taken": {
        "fr": MessageText(
            "Cette adresse est déjà utilisée", "Bonjour,",
            ("Quelqu'un a demandé à utiliser cette adresse électronique pour un compte "
             "Martinique Connect, mais elle est déjà celle d'un autre compte. Rien n'a été "
             "modifié.",
             "Si c'est votre adresse et que vous avez oublié votre mot de passe, choisissez-en "
             "un nouveau avec le lien ci-dessous."),
            "Choisir un nouveau mot de passe", _FR_CLOSING),
        "en": MessageText(
            "This address is already in use", "Hello,",
            ("Someone asked to use this email address for a Martinique Connect account, but it "
             "already belongs to another account. Nothing was changed.",
             "If this is your address and you forgot your password, choose a new one with the "
             "link below."),
            "Choose a new password", _EN_CLOSING),
    },
    "email_changed": {
        "fr": MessageText(
            "L'adresse de votre compte a été modifiée", "Bonjour {name},",
            ("L'adresse électronique de votre compte Martinique Connect vient d'être "
             "remplacée. Les prochains messages seront envoyés à la nouvelle adresse.",
             "Si ce n'est pas vous, contactez sans attendre le support de la Collectivité "
             "Territoriale de Martinique."),
            None, _FR_CLOSING),
        "en": MessageText(
            "Your account's address was changed", "Hello {name},",
            ("The email address of your Martinique Connect account was just replaced. Further "
             "messages will go to the new address.",
             "If this was not you, contact the Collectivité Territoriale de Martinique's "
             "support at once."),
            None, _EN_CLOSING),
    },
    "factors_reset": {
        "fr": MessageText(
            "Vos seconds facteurs ont été réinitialisés", "Bonjour {name},",
            ("À votre demande ou après un signalement, le support de la Collectivité "
             "Territoriale de Martinique a réinitialisé les seconds facteurs de votre compte "
             "Martinique Connect : vos applications d'authentification, vos clés d'accès et vos "
             "codes de secours ont été supprimés, et toutes vos sessions ont été fermées.",
             "Vous pouvez vous connecter avec votre adresse électronique et votre mot de passe. "
             "Ajoutez ensuite une application d'authentification ou une clé d'accès depuis la "
             "page « Sécurité » de votre compte, avec le lien ci-dessous : de nouveaux codes de "
             "secours vous seront donnés.",
             "Si vous n'avez rien demandé au support, changez votre mot de passe et contactez-le "
             "sans attendre."),
            "Ajouter un second facteur", _FR_CLOSING),
        "en": MessageText(
            "Your second factors were reset", "Hello {name},",
            ("At your request or after a report, the support of the Collectivité Territoriale "
             "de Martinique reset the second factors of your Martinique Connect account: your "
             "authenticator apps, passkeys and recovery codes were removed, and every session "
             "was closed.",
             "You can sign in with your email address and password. Then add an authenticator "
             "app or a passkey from your account's « Security » page, with the link below: you "
             "will be given new recovery codes.",
             "If you did not ask the support for anything, change your password and contact "
             "them at once."),
            "Add a second factor", _EN_CLOSING),
    },
    "deleted": {
        "fr": MessageText(
            "Votre compte a été supprimé", "Bonjour {name},",
            ("Votre compte Martinique Connect a été supprimé, à votre demande. Vos données "
             "personnelles ont été effacées, vos autorisations retirées et les services "
             "auxquels vous étiez connecté en ont été informés.",
             "Le journal de sécurité garde, sans votre nom ni votre adresse, la trace des "
             "opérations faites sur le compte, comme la loi le demande."),
            None, _FR_CLOSING),
        "en": MessageText(
            "Your account was deleted", "Hello {name},",
            ("Your Martinique Connect account was deleted, as you asked. Your personal data "
             "was erased, your authorisations withdrawn and the services you were signed in to "
             "were told.",
             "The security journal keeps, without your name or address, a record of the "
             "operations on the account, as the law requires."),
            None, _EN_CLOSING),
    },
    "mandate_code": {
        "fr": MessageText(
            "Votre code de confirmation de procuration", "Bonjour {name},",
            ("{mediator}, médiateur numérique, demande à pouvoir agir pour vous sur Martinique "
             "Connect ({scope}) jusqu'au {ends}.",
             "Si vous êtes à ses côtés et d'accord, donnez-lui ce code : {code}",
             "Ce code reste valable {minutes} minutes. Si vous n'avez rien demandé, ignorez ce "
             "message : aucune procuration ne sera créée. Vous pourrez retirer la procuration "
             "à tout moment depuis la page « Procurations » de votre compte."),
            None, _FR_CLOSING),
        "en": MessageText(
            "Your power of attorney confirmation code", "Hello {name},",
            ("{mediator}, a digital mediator, asks to act for you on Martinique Connect "
             "({scope}) until {ends}.",
             "If you are with them and agree, give them this code: {code}",
             "This code stays valid for {minutes} minutes. If you did not ask for anything, "
             "ignore this message: no power of attorney will be created. You can withdraw it at "
             "any time from your account's « Procurations » page."),
            None, _EN_CLOSING),
    },
}


@dataclass(frozen=True)
class RenderedMessage:
    to: str
    subject: str
    text: str
    html: str


class AccountMail:
    """Renders the account messages and hands them to the mailer off the request path."""

    def __init__(self, mailer_of: Any, *, workers: int = 2) -> None:
        # ``mailer_of()`` returns the current mailer (the provider's), read at send time.
        self._mailer_of = mailer_of
        self._env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                                autoescape=select_autoescape(["html"]), auto_reload=False)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mail")

    def render(self, kind: str, *, to: str, locale: str, link: str | None = None,
               **values: object) -> RenderedMessage:
        lang = "en" if locale == "en" else "fr"
        text = MESSAGES[kind][lang]
        values.setdefault("name", "")
        greeting = text.greeting.format(**values).replace(" ,", ",")
        paragraphs = [p.format(**values) for p in text.paragraphs]
        context = {"lang": lang, "subject": text.subject, "greeting": greeting,
                   "paragraphs": paragraphs, "action": text.action if link else None,
                   "link": link, "closing": text.closing}
        return RenderedMessage(
            to=to, subject=text.subject,
            text=self._env.get_template("email_message.txt").render(context),
            html=self._env.get_template("email_message.html").render(context),
        )

    def send(self, kind: str, *, to: str, locale: str, link: str | None = None,
             **values: object) -> Future[bool]:
        """Render now, deliver in the background; the future tells whether it left."""
        message = self.render(kind, to=to, locale=locale, link=link, **values)
        return self._pool.submit(self._deliver, message)

    def _deliver(self, message: RenderedMessage) -> bool:
        mailer: Mailer = self._mailer_of()
        try:
            mailer.send(to=message.to, subject=message.subject, text=message.text,
                        html=message.html)
            return True
        except Exception:  # noqa: BLE001 - a mail failure is logged, never shown to the person
            log.exception("could not send %r", message.subject)
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
