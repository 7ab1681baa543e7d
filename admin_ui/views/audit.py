"""The audit journal: filters (actor, organisation, action prefix, dates), CSV export, and
the result of the hash-chain check."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from admin_ui.deps import ConsoleRoute, ProviderDep, StaffDep, render
from idp import Provider
from plateforme.audit import AuditQuery, AuditRecord, to_csv_rows

router = APIRouter(route_class=ConsoleRoute)

PAGE_SIZE = 100
CSV_LIMIT = 50_000


def _day(value: str, field: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = "Date attendue au format AAAA-MM-JJ."
        return None


def _query(provider: Provider, params: dict[str, str]) -> tuple[AuditQuery, dict[str, str]]:
    errors: dict[str, str] = {}
    actor = params.get("acteur", "").strip()[:320] or None
    if actor and "@" in actor:
        user = provider.users.get_by_email(actor)
        actor = str(user.id) if user else actor
    since = _day(params.get("du", ""), "du", errors)
    until = _day(params.get("au", ""), "au", errors)
    query = AuditQuery(
        actor=actor,
        organisation=params.get("organisation", "").strip()[:100] or None,
        action=params.get("action", "").strip()[:100] or None,
        since=datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None,
        until=(datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1))
        if until else None,
    )
    return query, errors


def _actor_names(provider: Provider, actors: set[str]) -> dict[str, str]:
    names = {}
    for actor in actors:
        try:
            user = provider.users.get(uuid.UUID(actor))
        except ValueError:
            continue
        if user is not None:
            names[actor] = user.email
    return names


@router.get("/journal", name="admin.audit.search")
def journal(request: Request, staff: StaffDep, provider: ProviderDep, page: int = 1
            ) -> Response:
    staff.require("audit.view")
    params = {k: v for k, v in request.query_params.items() if k != "page"}
    query, errors = _query(provider, params)
    page = max(1, min(page, 10_000))
    events = [] if errors else provider.journal.search(
        query, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    more = len(events) > PAGE_SIZE
    events = events[:PAGE_SIZE]
    report = provider.journal.verify()
    names = _actor_names(provider, {e.actor for e in events if e.actor})
    return render(request, "admin/audit.html", {
        "title": ("Erreur : " if errors else "") + "Journal d'audit", "section": "journal",
        "events": events, "names": names, "report": report, "values": params,
        "errors": errors, "page": page, "more": more,
        "query_string": _encode(params),
    }, status_code=422 if errors else 200)


def _encode(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v})


@router.get("/journal.csv", name="admin.audit.export")
def export(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require("audit.view")
    query, errors = _query(provider, dict(request.query_params))
    events = [] if errors else provider.journal.search(query, limit=CSV_LIMIT)
    provider.journal.record(AuditRecord(
        action="audit.export", actor=staff.user_id, address=staff.address,
        details={"filters": {k: v for k, v in request.query_params.items() if v},
                 "rows": len(events)}))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in to_csv_rows(events):
        writer.writerow(row)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        "\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="journal-audit-{stamp}.csv"',
                 "Cache-Control": "no-store"},
    )
