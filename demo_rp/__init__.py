"""Demonstration relying parties (« Cantine scolaire », « Stationnement »): genuine OpenID Connect
clients of Martinique Connect over HTTP, built on Authlib's Starlette client. They double as
integration examples for commune developers."""

from demo_rp.app import create_rp

__all__ = ["create_rp"]
