"""The ``martinique-connect`` command as scripts use it: JSON out, exit 2 on bad input.

The commands run in process (``tests.support.cli``); the console script itself, as a process,
is tested at the end of this file."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from tests.support.cli import CliResult, run_cli, run_cli_process


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
    env.update(MC_DATA_DIR=str(tmp_path), MC_SECRET_KEY="cli-test-secret")
    return env


@pytest.fixture
def run(env: dict[str, str]):  # type: ignore[no-untyped-def]
    def _run(*args: str) -> CliResult:
        return run_cli(env, *args)

    return _run


def _one_line_error(result: CliResult | subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert "erreur :" not in result.stdout, "the error goes to stderr alone"
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_clients_create_json(run) -> None:  # type: ignore[no-untyped-def]
    result = run("clients", "create", "--name", "Cantine", "--redirect-uri",
                 "https://cantine.example.mq/cb", "--post-logout-redirect-uri",
                 "https://cantine.example.mq/", "--backchannel-logout-uri",
                 "https://cantine.example.mq/bcl", "--grant-type", "authorization_code",
                 "--grant-type", "refresh_token", "--scope", "openid", "--scope", "email",
                 "--first-party", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["client_id"]
    assert len(data["client_secret"]) >= 40
    assert data["scopes"] == ["openid", "email"]
    assert data["first_party"] is True
    shown = json.loads(run("clients", "show", data["client_id"]).stdout)
    assert shown["client_secret"] is None, "the secret is shown once only"
    listed = json.loads(run("clients", "list", "--json").stdout)
    # beside it, the administration console's own client, registered at initialisation
    assert [c["client_id"] for c in listed] == [data["client_id"]]
    # only the deploying commands register the console's client (its URIs follow MC_ISSUER)
    assert run("db", "upgrade").returncode == 0
    listed = json.loads(run("clients", "list", "--json").stdout)
    assert sorted(c["client_id"] for c in listed) == sorted([data["client_id"], "console-admin"])
    assert run("clients", "delete", data["client_id"]).returncode == 0
    _one_line_error(run("clients", "show", data["client_id"]))


def test_client_secret_is_stored_hashed(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(run("clients", "create", "--name", "X", "--redirect-uri",
                          "https://x.example.mq/cb", "--json").stdout)
    with sqlite3.connect(tmp_path / "martinique-connect.db") as db:
        stored = db.execute("SELECT client_secret_hash FROM idp_client").fetchone()[0]
    assert data["client_secret"] not in stored


def test_users_create_json(run) -> None:  # type: ignore[no-untyped-def]
    result = run("users", "create", "--email", "Marie@Example.mq", "--password",
                 "Un-mot-de-passe-solide", "--given-name", "Marie", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"]
    assert data["email"] == "marie@example.mq"
    _one_line_error(run("users", "create", "--email", "marie@example.mq", "--password",
                        "Un-mot-de-passe-solide", "--json"))


@pytest.mark.parametrize("args", [
    ("clients", "create", "--name", "X", "--json"),
    ("clients", "create", "--name", "X", "--redirect-uri", "ftp://x", "--json"),
    ("clients", "create", "--name", "X", "--redirect-uri", "http://evil.example/cb"),
    ("clients", "create", "--name", "X", "--redirect-uri", "https://x.mq/cb",
     "--auth-method", "magic"),
    ("users", "create", "--email", "not-an-email", "--password", "Un-mot-de-passe-solide"),
    ("users", "create", "--email", "a@example.mq", "--password", "court"),
    ("keys", "rotate", "--alg", "HS256"),
    ("clients", "frobnicate"),
    ("users", "create", "--email"),
])
def test_bad_input_exit_2_one_line(run, args) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(run(*args))


def test_serve_refuses_several_workers_without_redis(env: dict[str, str]) -> None:
    result = run_cli_process(env, "serve", "--workers", "2")  # the real process
    _one_line_error(result)
    assert "MC_REDIS_URL" in result.stderr


def test_keys_rotate_and_list(run) -> None:  # type: ignore[no-untyped-def]
    before = json.loads(run("keys", "list", "--json").stdout)
    assert run("keys", "rotate").returncode == 0
    after = json.loads(run("keys", "list", "--json").stdout)
    was_next = {k["kid"] for k in before if k["status"] == "next"}
    now_active = {k["kid"] for k in after if k["status"] == "active"}
    assert was_next == now_active
    assert {k["kid"] for k in before if k["status"] == "active"} == {
        k["kid"] for k in after if k["status"] == "retiring"}


def test_audit_verify_detects_tampering(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("users", "create", "--email", "a@example.mq", "--password", "Un-mot-de-passe-solide")
    ok = run("audit", "verify")
    assert ok.returncode == 0
    assert "intègre" in ok.stdout
    with sqlite3.connect(tmp_path / "martinique-connect.db") as db:
        db.execute("UPDATE plateforme_audit_event SET actor = 'quelqu-un' WHERE seq = 1")
    broken = run("audit", "verify")
    assert broken.returncode == 1
    assert "entrée 1" in broken.stderr


STAFF = {"admin@demo.mq", "mairie.lamentin@demo.mq", "acheteur.lamentin@demo.mq",
         "valideur.ctm@demo.mq", "archiviste.lamentin@demo.mq", "autorite.archives@demo.mq"}


def test_demo_seed_is_idempotent(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seeded = run("demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    first = json.loads((tmp_path / "demo.json").read_text())
    again = run("demo", "seed")
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "demo.json").read_text())
    assert first["clients"] == second["clients"]
    assert first["logins"] == second["logins"], "same TOTP keys on the second run"
    assert again.stdout == seeded.stdout
    for login in second["logins"]:
        if login["email"] not in STAFF:
            assert "totp" not in login, "citizens keep the password alone"
            continue
        secret = login["totp"]["secret"]
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert login["totp"]["otpauth_uri"].startswith("otpauth://totp/Martinique%20Connect:")
        assert f"secret={secret}" in login["totp"]["otpauth_uri"]
        assert f"clé : {secret}" in again.stdout
        assert f"oathtool --totp -b {secret}" in again.stdout
        # the printed one-liner gives the current code
        line = next(x for x in again.stdout.splitlines() if "code du moment" in x and secret in x)
        command = line.split("code du moment : ", 1)[1]
        code = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60,  # noqa: S602
                              check=True).stdout.strip()
        assert code == pyotp.TOTP(secret).now() or code == pyotp.TOTP(secret).at(
            time.time() - 5), code
    with sqlite3.connect(tmp_path / "martinique-connect.db") as db:
        factors = db.execute("SELECT COUNT(*) FROM idp_totp WHERE confirmed").fetchone()[0]
        stored = " ".join(r[0] for r in db.execute("SELECT secret_encrypted FROM idp_totp"))
    assert factors == len(STAFF), "one authenticator app per staff account, not one per run"
    assert all(login["totp"]["secret"] not in stored for login in second["logins"]
               if "totp" in login), "encrypted at rest"


def test_orgs_list_json(run) -> None:  # type: ignore[no-untyped-def]
    orgs = json.loads(run("orgs", "list", "--json").stdout)
    kinds = [o["kind"] for o in orgs]
    assert kinds.count("commune") == 34
    assert kinds.count("epci") == 3
    assert kinds.count("ctm") == 1 and kinds.count("sdis") == 1
    communes = sorted(o["insee"] for o in orgs if o["kind"] == "commune")
    assert communes == [f"972{n:02d}" for n in range(1, 35)]
    assert all({"id", "slug", "name", "kind", "insee"} <= set(o) for o in orgs)
    lamentin = next(o for o in orgs if o["slug"] == "lamentin")
    assert lamentin["parent"] == "cacem" and lamentin["population_source"]
    cacem = next(o for o in orgs if o["slug"] == "cacem")
    members = [o for o in orgs if o["parent"] == "cacem"]
    assert cacem["population"] == sum(o["population"] for o in members)


def test_members_grant_list_revoke(run) -> None:  # type: ignore[no-untyped-def]
    run("users", "create", "--email", "agent@lamentin.mq", "--password", "Un-mot-de-passe-solide")
    assert run("members", "grant", "--email", "agent@lamentin.mq", "--org", "lamentin",
               "--role", "archivist").returncode == 0
    listed = json.loads(run("members", "list", "--org", "lamentin", "--json").stdout)
    assert listed == [{"email": "agent@lamentin.mq", "user_id": listed[0]["user_id"],
                       "role": "archivist"}]
    _one_line_error(run("members", "grant", "--email", "agent@lamentin.mq", "--org",
                        "lamentin", "--role", "ctm_admin"))
    _one_line_error(run("members", "grant", "--email", "agent@lamentin.mq", "--org",
                        "atlantis", "--role", "viewer"))
    assert run("members", "revoke", "--email", "agent@lamentin.mq", "--org", "lamentin",
               "--role", "archivist").returncode == 0
    assert json.loads(run("members", "list", "--org", "lamentin", "--json").stdout) == []


def test_users_create_applies_the_password_policy(run) -> None:  # type: ignore[no-untyped-def]
    result = run("users", "create", "--email", "a@example.mq", "--password", "motdepasse123")
    _one_line_error(result)
    assert "mot de passe" in result.stderr.lower()


def test_clients_create_refuses_an_unknown_organisation(run) -> None:  # type: ignore[no-untyped-def]
    result = run("clients", "create", "--name", "X", "--redirect-uri", "https://x.mq/cb",
                 "--org", "atlantis")
    _one_line_error(result)
    assert "atlantis" in result.stderr
    ok = run("clients", "create", "--name", "X", "--redirect-uri", "https://x.mq/cb",
             "--org", "lamentin", "--json")
    assert json.loads(ok.stdout)["organisation"] == "lamentin"


def test_invocations_in_one_process_share_nothing(tmp_path: Path) -> None:
    """Each invocation reads its settings when it runs and closes what it opened: two data
    directories in one process stay apart, and no database file is left open."""
    first, second = ({**os.environ, "MC_DATA_DIR": str(tmp_path / name),
                      "MC_SECRET_KEY": f"secret-{name}"} for name in ("a", "b"))
    created = run_cli(first, "clients", "create", "--name", "A", "--redirect-uri",
                      "https://a.example.mq/cb", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(run_cli(second, "clients", "list", "--json").stdout) == []
    listed = json.loads(run_cli(first, "clients", "list", "--json").stdout)
    assert [c["client_id"] for c in listed] == [json.loads(created.stdout)["client_id"]]
    kids = {k["kid"] for k in json.loads(run_cli(first, "keys", "list", "--json").stdout)}
    assert kids.isdisjoint(k["kid"] for k in json.loads(
        run_cli(second, "keys", "list", "--json").stdout))
    fds = Path("/proc/self/fd")
    if fds.is_dir():  # Linux: the engines were disposed of
        opened = {os.path.realpath(fds / fd) for fd in os.listdir(fds)}
        assert not any(str(tmp_path) in path for path in opened), opened


def test_a_provider_command_imports_only_the_provider(env: dict[str, str]) -> None:
    """Once the database is at its last migration, ``clients list`` loads neither the console
    nor the archives nor the catalogue (seconds of import in every command's process)."""
    assert run_cli(env, "orgs", "list").returncode == 0  # migrations applied
    probe = ("import sys\n"
             "from martinique_connect.cli import app\n"
             "code = app(['clients', 'list', '--json'], standalone_mode=False)\n"
             "loaded = {m.split('.')[0] for m in sys.modules}\n"
             "print(code, sorted(loaded & {'idp', 'admin_ui', 'archivage', "
             "'services_mutualises'}))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 ['idp']"


# --- the console script, as a process -------------------------------------------------------


def test_console_script_bad_input_and_help(env: dict[str, str]) -> None:
    """What scripts see of the real program: exit 2 and one line on stderr for bad input (a
    usage error, a refused value), the help on stdout with exit 0, JSON on stdout."""
    _one_line_error(run_cli_process(env, "clients", "frobnicate"))
    refused = run_cli_process(env, "users", "create", "--email", "a@example.mq",
                              "--password", "court")
    _one_line_error(refused)
    assert refused.stderr.startswith("erreur : ") and refused.stdout == ""
    helped = run_cli_process(env, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "clients" in helped.stdout and "archives" in helped.stdout
    listed = run_cli_process(env, "orgs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 39


def test_another_secret_key_is_refused_before_anything_runs(env: dict[str, str]) -> None:
    """An instance of the deployment started with another MC_SECRET_KEY cannot decrypt the
    stored signing keys: every command, ``serve`` included, stops with the reason instead of
    answering every token request with an error."""
    assert run_cli(env, "keys", "list", "--json").returncode == 0  # keys created
    other = {**env, "MC_SECRET_KEY": "another-secret"}
    for args in (("keys", "list", "--json"), ("clients", "list")):
        result = run_cli(other, *args)
        _one_line_error(result)
        assert "MC_SECRET_KEY ne déchiffre pas la clé de signature" in result.stderr
    served = run_cli_process(other, "serve")  # the real process: it never listens
    _one_line_error(served)
    assert "même clé secrète" in served.stderr
    assert run_cli(env, "keys", "list", "--json").returncode == 0  # nothing was changed
