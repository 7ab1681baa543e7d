"""Exception handlers: domain errors become RFC 9457 problem documents; no stack trace ever
reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from plateforme.errors import DomainError, ServiceUnavailable, TooManyRequests

log = logging.getLogger("martinique_connect")

PROBLEM = "application/problem+json"
# FastAPI's own messages (English), said in French to the client.
FRAMEWORK_DETAILS = {
    "There was an error parsing the body": "Le corps de la requête est illisible (JSON attendu).",
}


def problem(status: int, title: str, detail: str | None = None, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        extra = {"field": exc.field} if exc.field else {}
        response = problem(exc.status, exc.title, exc.message, **extra)
        if isinstance(exc, TooManyRequests | ServiceUnavailable):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg")}
            for e in exc.errors()
        ]
        return problem(422, "Données invalides", "La requête contient des valeurs invalides.",
                       errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        titles = {400: "Requête mal formée", 404: "Introuvable", 405: "Méthode non autorisée",
                  413: "Contenu trop volumineux"}
        detail = str(exc.detail) if exc.detail else None
        detail = FRAMEWORK_DETAILS.get(detail or "", detail)
        response = problem(exc.status_code, titles.get(exc.status_code, "Erreur"), detail)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # PostgreSQL refuses the NUL character in text (SQLite stores it): a client's input,
        # wherever it came from (query, form, JSON), not a server failure.
        if "NUL (0x00)" in str(exc.orig):
            return problem(400, "Requête mal formée",
                           "Le caractère nul (U+0000) n'est pas accepté dans un texte.")
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Erreur interne", "Une erreur inattendue s'est produite.")
