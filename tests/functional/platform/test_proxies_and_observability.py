"""Behind a reverse proxy: forwarded headers believed only from the configured proxies, the
request id from the proxy or generated, echoed and written to the audit journal; /readyz,
/metrics and the JSON logs."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from martinique_connect.app import create_app
from plateforme.audit import AuditEvent
from tests.conftest import PASSWORD, Backend, Platform, make_settings
from tests.functional.platform.conftest import metric_value
from tests.support.live import free_port, serve

METRICS_TOKEN = "jeton-des-metriques-de-test"


@pytest.fixture(scope="module")
def proxied(backend: Backend, platform: Platform) -> Iterator[Platform]:
    """The platform behind a reverse proxy on 127.0.0.1 and inside 10.0.0.0/8 (a second
    instance over the same database: same secret key, which encrypts the signing keys)."""
    data_dir = Path(tempfile.mkdtemp(prefix="mc-proxied-"))
    port = free_port()
    settings = make_settings(backend, data_dir, port, trusted_proxies="127.0.0.1, 10.0.0.0/8",
                             secret_key=platform.settings.secret_key,
                             metrics_token=METRICS_TOKEN, access_log=True)
    with serve(create_app(settings), port) as live:
        yield Platform(live=live, settings=settings)
    shutil.rmtree(data_dir, ignore_errors=True)


def _failed_login(platform: Platform, email: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=platform.url, headers=headers) as http:
        page = http.get("/connexion")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        return http.post("/connexion", data={"email": email, "password": "mauvais-" + PASSWORD,
                                             "csrf_token": token})


def _journal(platform: Platform, actor: str, action: str) -> AuditEvent:
    with Session(platform.live.app.state.engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.actor == actor, AuditEvent.action == action)
            .order_by(col(AuditEvent.seq).desc())
        ).first()
    assert event is not None, f"no {action} entry for {actor}"
    return event


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(platform: Platform) -> None:
    user = platform.create_user()
    response = _failed_login(platform, user["email"], {
        "X-Forwarded-For": "203.0.113.9", "X-Request-ID": "forge-1234",
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
    })
    assert response.status_code == 401
    rid = response.headers["x-request-id"]
    assert rid != "forge-1234" and len(rid) == 32
    event = _journal(platform, str(user["id"]), "login.failure")
    assert event.address == "127.0.0.1"
    assert event.request_id == rid
    # The host and scheme stay those of the connection: a trailing-slash redirect points back
    # to the server itself, and the issuer is always MC_ISSUER.
    redirect = httpx.get(platform.url + "/admin", headers={
        "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(platform.url + "/admin/")
    discovery = httpx.get(platform.url + "/.well-known/openid-configuration",
                          headers={"Host": "evil.example"}).json()
    assert discovery["issuer"] == platform.settings.issuer


def test_a_trusted_proxy_gives_client_scheme_host_and_request_id(proxied: Platform) -> None:
    user = proxied.create_user()
    response = _failed_login(proxied, user["email"], {
        "X-Forwarded-For": "198.51.100.7, 10.1.2.3", "X-Request-ID": "lb-4f2a-0001",
    })
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "lb-4f2a-0001"
    event = _journal(proxied, str(user["id"]), "login.failure")
    # 10.1.2.3 is a trusted hop (10.0.0.0/8): the client is the address before it.
    assert event.address == "198.51.100.7"
    assert event.request_id == "lb-4f2a-0001"
    redirect = httpx.get(proxied.url + "/admin", headers={
        "X-Forwarded-Host": "connect.collectivitedemartinique.mq", "X-Forwarded-Proto": "https"})
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "https://connect.collectivitedemartinique.mq/admin/"
    discovery = httpx.get(proxied.url + "/.well-known/openid-configuration", headers={
        "X-Forwarded-Host": "evil.example"}).json()
    assert discovery["issuer"] == proxied.settings.issuer


def test_malformed_forwarded_values_and_request_ids_are_refused(proxied: Platform) -> None:
    response = httpx.get(proxied.url + "/admin", headers={
        "X-Forwarded-Host": "evil.example/<script>", "X-Forwarded-Proto": "gopher",
        "X-Request-ID": "a b\tc",
    })
    assert response.headers["location"].startswith(proxied.url + "/admin/")
    assert response.headers["x-request-id"] != "a b\tc"


def test_readyz_names_each_check_and_takes_plugged_checks(proxied: Platform) -> None:
    response = httpx.get(proxied.url + "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready",
                               "checks": {"database": "ok", "kv": "ok", "blobs": "ok"}}
    readiness = proxied.live.app.state.readiness
    readiness.add("essai", lambda: False)
    try:
        response = httpx.get(proxied.url + "/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["essai"] == "unreachable"
        assert body["failing"] == ["essai"]
    finally:
        readiness._checks.pop("essai")  # noqa: SLF001 - undo the test's registration


def test_readyz_names_blobs_when_fewer_than_min_copies_answer(proxied: Platform) -> None:
    """The default storage is two folders of the data directory, both required
    (``MC_BLOB_MIN_COPIES`` 2): one replaced by a file makes the instance not ready."""
    archives = proxied.live.app.state.archives
    assert archives.blobs.min_copies == 2 and archives.blobs.locations == ["a", "b"]
    folder = proxied.settings.data_dir / "blobs" / "b"
    assert folder.is_dir()
    aside = folder.with_name("b.aside")
    folder.rename(aside)
    folder.write_text("pas un dossier")
    try:
        response = httpx.get(proxied.url + "/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == ["blobs"]
        assert body["checks"] == {"database": "ok", "kv": "ok", "blobs": "unreachable"}
    finally:
        folder.unlink()
        aside.rename(folder)
    recovered = httpx.get(proxied.url + "/readyz")
    assert recovered.status_code == 200 and recovered.json()["status"] == "ready"


def test_metrics_need_the_token_and_count_per_route_template(proxied: Platform,
                                                            browser: Any) -> None:
    assert httpx.get(proxied.url + "/metrics").status_code == 403
    assert httpx.get(proxied.url + "/metrics",
                     headers={"Authorization": "Bearer wrong"}).status_code == 403
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    before = httpx.get(proxied.url + "/metrics", headers=auth).text
    # Two raw paths of one template, a path no route knows, discovery (answered by a
    # middleware), and a sign-in.
    for path in ("/static/plateforme/site.css", "/static/plateforme/nope.css",
                 "/nowhere/abc123", "/.well-known/openid-configuration"):
        httpx.get(proxied.url + path)
    user = proxied.create_user()
    page = browser.get(proxied.url + "/connexion")
    browser.login(page, user["email"], user["password"])
    client = proxied.create_client(grant_types=["client_credentials"], scopes=["archives:read"])
    token = httpx.post(proxied.url + "/token", data={"grant_type": "client_credentials",
                                                     "scope": "archives:read"},
                       auth=(client["client_id"], client["client_secret"]))
    assert token.status_code == 200, token.text
    response = httpx.get(proxied.url + "/metrics", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    static = "/static/plateforme/{path}"
    assert delta("mc_http_requests_total", method="GET", route=static, status="200") == 1
    assert delta("mc_http_requests_total", method="GET", route=static, status="404") == 1
    assert delta("mc_http_requests_total", route="(non routée)", status="404") >= 1
    assert delta("mc_http_requests_total", route="/.well-known/openid-configuration") >= 1
    assert delta("mc_http_request_duration_seconds_count", route="/token") >= 1
    assert "/nowhere/abc123" not in after
    assert delta("mc_sign_ins_total", outcome="success", acr="eidas1") >= 1
    assert delta("mc_tokens_issued_total", grant_type="client_credentials") >= 1
    assert delta("mc_audit_events_total", outcome="success") >= 1


def test_metrics_without_a_token_answer_only_loopback_callers(platform: Platform,
                                                              proxied: Platform) -> None:
    # No MC_METRICS_TOKEN: a caller on this machine gets them...
    assert httpx.get(platform.url + "/metrics").status_code == 200
    # ...but not a remote client relayed by a (trusted) local reverse proxy.
    settings = proxied.settings.model_copy(update={"metrics_token": None})
    data_dir = Path(tempfile.mkdtemp(prefix="mc-metrics-"))
    port = free_port()
    settings = settings.model_copy(update={"port": port, "data_dir": data_dir,
                                           "issuer": f"http://127.0.0.1:{port}"})
    try:
        with serve(create_app(settings), port) as live:
            assert httpx.get(live.url + "/metrics").status_code == 200
            relayed = httpx.get(live.url + "/metrics", headers={"X-Forwarded-For": "192.0.2.1"})
            assert relayed.status_code == 403
            assert relayed.headers["content-type"] == "application/problem+json"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_json_logs_carry_the_request_id(proxied: Platform, capsys: Any) -> None:
    from plateforme.logs import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json", logging.INFO)
    try:
        logging.getLogger("martinique_connect.test").info("hors requête", extra={"x": 1})
        response = httpx.get(proxied.url + "/nowhere", headers={"X-Request-ID": "trace-77"})
        assert response.headers["x-request-id"] == "trace-77"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    first = lines[0]
    assert first["message"] == "hors requête" and first["x"] == 1 and first["level"] == "info"
    assert first["logger"] == "martinique_connect.test" and "time" in first
    assert "request_id" not in first
    access = [line for line in lines if line.get("logger") == "martinique_connect.access"]
    assert len(access) == 1, lines
    assert access[0]["request_id"] == "trace-77"
    assert access[0]["status"] == 404 and access[0]["route"] == "(non routée)"
    assert access[0]["path"] == "/nowhere" and access[0]["client"] == "127.0.0.1"
