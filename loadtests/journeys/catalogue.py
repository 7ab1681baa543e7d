"""Journey of the shared-services catalogue (``/api/services/…``): a commune's purchasing
software (``client_credentials`` for the organisation, scopes ``services:read
services:order``) browses the catalogue and orders « Martinique Connect pour une
application »; a CTM approver (a person holding the ``approver`` role, signed in through the
CTM's first-party tool) approves it, which provisions the application's OpenID client; the
buyer follows the order and shows the client's secret once.

The offering is chosen because its provisioning (registering one OpenID client) is cheap and
has no reserve to run out of, unlike a fibre pair: every order must complete.

The approver signs in once per locust process (code flow + PKCE, their token kept until a
minute before it expires), like a person keeping a session open: the sign-in's requests are
in the statistics under their own names, not in the journey's time nor its count.
"""

from __future__ import annotations

import time
from typing import Any

from common import Config, Journey, JourneyFailed, bearer, client_credentials, config
from gevent.lock import Semaphore
from locust import TaskSet, task

from journeys.idp import code_flow_tokens

CATALOGUE = "catalogue (jeton, offres, commande, validation, suivi, secret)"
APPROVER_SIGN_IN = "catalogue : connexion du valideur CTM"
OFFERING = "martinique-connect"
BUYER_SCOPE = "services:read services:order"
APPROVER_SCOPE = "openid services:read services:admin"
REPORTED = [CATALOGUE]  # the JOURNEY entries this module reports

_approver_lock = Semaphore()
_approver: dict[str, Any] = {}  # {"token": ..., "until": monotonic time}


def approver_token(user: Any, cfg: Config) -> str | None:
    """The approver's access token, signed in again a minute before it expires. None when
    the sign-in failed (already reported by locust)."""
    with _approver_lock:
        if _approver.get("until", 0.0) > time.monotonic():
            return str(_approver["token"])
        user.client.cookies.clear()
        with Journey(user, APPROVER_SIGN_IN, report=False) as journey:
            tokens = code_flow_tokens(journey, cfg, cfg.approver_app, cfg.approver,
                                      expect_login=True, scope=APPROVER_SCOPE)
        if not journey.ok:
            return None
        _approver.update(token=tokens["access_token"],
                         until=time.monotonic() + int(tokens.get("expires_in", 600)) - 60)
        return str(tokens["access_token"])


class CatalogueOrder(TaskSet):
    """Buyer: token, the offerings, one offering, an order (``held``). Approver: approval
    (provisioning: ``completed``). Buyer: the order followed, the subscription's client
    secret shown once."""

    @task
    def browse_order_approve(self) -> None:
        cfg = config()
        approver = approver_token(self.user, cfg)
        if approver is None:
            return
        api = cfg.issuer + "/api/services"
        with Journey(self.user, CATALOGUE) as journey:
            token = client_credentials(journey, cfg, cfg.buyer_client, BUYER_SCOPE)
            offerings = journey.call("GET", api + "/offerings", expect=(200,),
                                     headers=bearer(token)).json()
            if OFFERING not in {o["code"] for o in offerings}:
                raise JourneyFailed(f"{OFFERING} is not in the catalogue")
            journey.call("GET", f"{api}/offerings/{OFFERING}", expect=(200,),
                         name="/api/services/offerings/{code}", headers=bearer(token))
            order = journey.call("POST", api + "/orders", expect=(201,), headers=bearer(token),
                                 json={"items": [{"action": "add", "offering": OFFERING,
                                                  "characteristics": {
                    "application": "Application de charge",
                    "redirect_uris": "https://charge.example.mq/auth/callback"}}]}).json()
            if order.get("state") != "held":
                raise JourneyFailed(f"new order in state {order.get('state')}")
            approved = journey.call("POST", f"{api}/orders/{order['id']}/approve",
                                    expect=(200,), name="/api/services/orders/{id}/approve",
                                    headers=bearer(approver),
                                    json={"reason": "test de charge"}).json()
            if approved.get("state") != "completed":
                raise JourneyFailed(f"approved order in state {approved.get('state')}: "
                                    f"{approved.get('state_reason')}")
            followed = journey.call("GET", f"{api}/orders/{order['id']}", expect=(200,),
                                    name="/api/services/orders/{id}",
                                    headers=bearer(token)).json()
            subscription = followed["items"][0]["subscription_id"]
            secret = journey.call("POST", f"{api}/subscriptions/{subscription}/secret",
                                  expect=(200,), name="/api/services/subscriptions/{id}/secret",
                                  headers=bearer(token)).json()
            if not secret.get("client_secret"):
                raise JourneyFailed("no client secret shown for the provisioned application")
