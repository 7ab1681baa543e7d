"""The archival service's HTTP API (an OAuth 2.0 resource server under ``/api/archives``)."""

from archivage.api.routes import router

__all__ = ["router"]
