"""« Martinique Connect pour une application » : the commune application's OIDC client.

The redirect URIs come from the order's ``redirect_uris`` characteristic (separated by spaces
or new lines); the client is confidential (secret, code flow with PKCE) and registered for the
organisation. The secret is returned once; suspension disables the client and revokes its
tokens (no token can be obtained while suspended), resumption enables it again with the same
secret; termination disables it for good.
"""

from __future__ import annotations

from plateforme.errors import InvalidInput
from services_mutualises.interfaces import ClientRegistrar
from services_mutualises.provisioners.base import ProvisioningRequest
from services_mutualises.schemas import ProvisionOutcome


def client_id_for(request: ProvisioningRequest) -> str:
    """Stable for a subscription: a retried provisioning finds the same client."""
    return f"svc-{request.organisation}-{request.subscription_id.hex[:12]}"


def redirect_uris_of(characteristics: dict[str, str]) -> list[str]:
    uris = characteristics.get("redirect_uris", "").split()
    if not uris:
        raise InvalidInput("Indiquez au moins une adresse de redirection de l'application.",
                           field="redirect_uris")
    return uris


class OidcClientProvisioner:
    one_per_organisation = False

    def __init__(self, registrar: ClientRegistrar) -> None:
        self._registrar = registrar

    def provision(self, request: ProvisioningRequest) -> ProvisionOutcome:
        name = request.characteristics.get("application") or request.offering_name
        registered = self._registrar.register(
            client_id=client_id_for(request), name=name, organisation=request.organisation,
            redirect_uris=redirect_uris_of(request.characteristics), actor=request.actor)
        return ProvisionOutcome({"client_id": registered.client_id, "application": name},
                                secret=registered.client_secret)

    def modify(self, request: ProvisioningRequest) -> ProvisionOutcome:
        """New redirect URIs (a ``modify`` order item); the client, its secret and its
        tokens stay as they are."""
        client_id = str(request.resources.get("client_id") or client_id_for(request))
        self._registrar.set_redirect_uris(
            client_id, redirect_uris_of(request.characteristics), actor=request.actor,
            reason=f"modification de l'abonnement {request.subscription_id}")
        return ProvisionOutcome(dict(request.resources))

    def release(self, request: ProvisioningRequest, *, undo: bool = False) -> None:
        client_id = str(request.resources.get("client_id") or client_id_for(request))
        if undo:
            self._registrar.remove(client_id, actor=request.actor,
                                   reason="annulation d'une mise en service échouée")
        else:
            self._registrar.disable(client_id, actor=request.actor,
                                    reason="résiliation de l'abonnement")

    def suspend(self, request: ProvisioningRequest) -> None:
        self._registrar.disable(str(request.resources.get("client_id") or client_id_for(request)),
                                actor=request.actor, reason="suspension de l'abonnement")

    def resume(self, request: ProvisioningRequest) -> None:
        self._registrar.enable(str(request.resources.get("client_id") or client_id_for(request)),
                               actor=request.actor, reason="rétablissement de l'abonnement")
