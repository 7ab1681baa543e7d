"""One module per domain, each holding locust ``TaskSet`` classes (one journey each) and the
list ``REPORTED`` of the ``JOURNEY`` entries it reports:

* ``idp``: a citizen's first sign-in, SSO into a second application, a resource server's
  ``client_credentials`` grant and introspection;
* ``archives``: an organisation's software deposits two files, downloads one (digest
  checked) and finds the deposit by a search;
* ``catalogue``: a commune's purchasing software browses the catalogue and orders, a CTM
  approver approves (provisioning), the buyer follows the order and shows the secret.

What each journey needs (clients, the approver's account) is created by ``prepare.py``.
"""
