"""The demo FranceConnect for ``make run``: a second instance of our own provider on
``http://localhost:8003`` (another host name than the provider's ``127.0.0.1:8000``, so that
the browser keeps the two sessions apart), configured like FranceConnect v2 for the
provider: a client with ``client_secret_post`` and signed UserInfo, and a citizen with a
civil status.

``python -m martinique_connect.demo_franceconnect DATA_DIR`` seeds it (in ``DATA_DIR/
franceconnect``) and writes ``DATA_DIR/franceconnect-demo.env``: the ``MC_FRANCECONNECT_*``
settings of the provider, as shell assignments. See docs/franceconnect.md.
"""

from __future__ import annotations

import shlex
import sys
import uuid
from pathlib import Path

from sqlmodel import Session

from idp import ClientCreate, UserCreate
from idp.models import User
from martinique_connect.app import create_app
from plateforme.settings import Settings, load_settings

UPSTREAM_ISSUER = "http://localhost:8003"
CLIENT_ID = "martinique-connect"
CITIZEN = {
    "email": "ange.lagier@franceconnect.demo", "password": "FranceConnect-Demo-972",
    "given_name": "Angela Claire Louise", "family_name": "Lagier", "gender": "female",
    "birthdate": "1962-08-24", "birthplace": "97209", "birthcountry": "99100",
}


def seed(data_dir: Path, broker_issuer: str) -> dict[str, str]:
    """Create the upstream's client and citizen if missing; return the provider's
    ``MC_FRANCECONNECT_*`` settings."""
    # Its own SQLite database and in-process store, whatever MC_DATABASE_URL/MC_REDIS_URL say.
    settings = Settings(issuer=UPSTREAM_ISSUER, port=8003, data_dir=data_dir / "franceconnect",
                        database_url=None, redis_url=None, blob_url=None, smtp_url=None)
    app = create_app(settings)
    provider = app.state.provider
    env_file = data_dir / "franceconnect-demo.env"
    known = _read_env(env_file)
    if provider.clients.get(CLIENT_ID) is None:
        secret = provider.clients.create(ClientCreate(
            client_id=CLIENT_ID, name="Martinique Connect",
            redirect_uris=[broker_issuer + "/connexion/franceconnect/retour"],
            post_logout_redirect_uris=[broker_issuer + "/connexion/franceconnect/deconnexion"],
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            userinfo_signed_response_alg="ES256", scopes=["openid", "profile", "email"],
        ), actor="demo").client_secret
    elif known.get("MC_FRANCECONNECT_CLIENT_SECRET"):
        secret = known["MC_FRANCECONNECT_CLIENT_SECRET"]
    else:
        secret = provider.clients.rotate_secret(CLIENT_ID, actor="demo")
    if provider.users.get_by_email(CITIZEN["email"]) is None:
        created = provider.users.create(UserCreate(
            email=CITIZEN["email"], password=CITIZEN["password"],
            given_name=CITIZEN["given_name"], family_name=CITIZEN["family_name"]), actor="demo")
        with Session(provider.engine) as session:
            user = session.get(User, uuid.UUID(str(created.id)))
            assert user is not None
            user.gender, user.birthdate = CITIZEN["gender"], CITIZEN["birthdate"]
            user.birthplace, user.birthcountry = CITIZEN["birthplace"], CITIZEN["birthcountry"]
            session.add(user)
            session.commit()
    provider.close()
    app.state.engine.dispose()
    values = {
        "MC_FRANCECONNECT_ISSUER": UPSTREAM_ISSUER,
        "MC_FRANCECONNECT_CLIENT_ID": CLIENT_ID,
        "MC_FRANCECONNECT_CLIENT_SECRET": str(secret),
        # Our provider releases the civil status with ``profile``; the real FranceConnect
        # has one scope per claim (the default of MC_FRANCECONNECT_SCOPES).
        "MC_FRANCECONNECT_SCOPES": "openid profile email",
        "MC_FRANCECONNECT_ACR_VALUES": "eidas1",
    }
    env_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = env_file.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
    tmp.chmod(0o600)
    tmp.replace(env_file)
    return values


def _read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        parts = shlex.split(value)
        values[key] = parts[0] if parts else ""
    return values


def main(argv: list[str]) -> int:
    data_dir = Path(argv[1]) if len(argv) > 1 else load_settings().data_dir
    seed(data_dir, load_settings().issuer)
    print(f"  FranceConnect (démo) : {UPSTREAM_ISSUER}/  "
          f"({CITIZEN['email']} / {CITIZEN['password']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
