"""The catalogue's HTTP API (``/api/services/``)."""

from services_mutualises.api.routes import router

__all__ = ["router"]
