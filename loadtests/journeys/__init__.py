"""One module per domain, each holding locust ``TaskSet`` classes (one journey each):

* ``idp``: a citizen's first sign-in, SSO into a second application, a resource server's
  ``client_credentials`` grant and introspection.

The archive deposit/download journeys (``archivage``) and the catalogue browsing/ordering
journeys (``services_mutualises``) go into their own modules here when those APIs exist, with
their own ``User`` class in ``locustfile.py`` and what they need added by ``prepare.py``.
"""
