"""Authlib specialisation: the only bridge between the OAuth 2.0 / OpenID Connect protocol
(Authlib) and the provider's storage (``idp.services``). Framework-free except
``integration.py``."""
