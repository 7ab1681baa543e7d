"""Use cases of the OpenID provider. No web framework here."""

from idp.services.clients import ClientService, check_secret, hash_secret
from idp.services.consents import ConsentService
from idp.services.logout import BackchannelNotifier, LogoutDelivery
from idp.services.organisations import Affiliation, OrganisationService, RoleGrant
from idp.services.provider import Provider
from idp.services.sessions import SessionStore, SSOSession
from idp.services.signing_keys import KeyService
from idp.services.subjects import SubjectResolver
from idp.services.throttle import Throttle
from idp.services.tokens import CodeData, TokenService
from idp.services.users import LoginFailed, SignIn, UserService

__all__ = [
    "Affiliation",
    "BackchannelNotifier",
    "ClientService",
    "CodeData",
    "ConsentService",
    "KeyService",
    "LoginFailed",
    "LogoutDelivery",
    "OrganisationService",
    "Provider",
    "RoleGrant",
    "SSOSession",
    "SessionStore",
    "SignIn",
    "SubjectResolver",
    "Throttle",
    "TokenService",
    "UserService",
    "check_secret",
    "hash_secret",
]
