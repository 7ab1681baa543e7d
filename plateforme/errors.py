"""Domain errors. Services raise these; the composition root maps them to HTTP in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose. ``message`` is for people (French)."""

    status = 400
    title = "Requête invalide"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    status = 422
    title = "Données invalides"


class NotFound(DomainError):
    status = 404
    title = "Introuvable"


class Conflict(DomainError):
    status = 409
    title = "Conflit"


class Forbidden(DomainError):
    status = 403
    title = "Accès refusé"


class Unauthenticated(DomainError):
    status = 401
    title = "Authentification requise"


class TooManyRequests(DomainError):
    status = 429
    title = "Trop de tentatives"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency (key-value store, database, blob store) does not answer: HTTP 503 with
    ``Retry-After``; the request may be retried."""

    status = 503
    title = "Service momentanément indisponible"

    def __init__(self, message: str, *, dependency: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.retry_after = retry_after
