"""Locust entry point: one ``User`` class per journey, so a run can load one journey alone
(``locust -f loadtests/locustfile.py FirstSignInUser``) or all of them (the default mix).

Needs ``LOADTEST_CONFIG`` (the JSON written by ``loadtests/prepare.py``) and ``--host`` (the
issuer). ``loadtests/run.py`` (``make loadtest``) does all of that against a throw-away
server. ``LOADTEST_WAIT`` sets each simulated person's pause between journeys, in seconds
(default 0: closed loop, each user starts the next journey as soon as one ends, which is
what measures capacity).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common, journeys

from journeys.archives import ArchiveDepositAndDownload  # noqa: E402
from journeys.catalogue import CatalogueOrder  # noqa: E402
from journeys.idp import FirstSignIn, ResourceServer, SsoSecondApplication  # noqa: E402
from locust import HttpUser, constant  # noqa: E402

WAIT = float(os.environ.get("LOADTEST_WAIT", "0"))


class FirstSignInUser(HttpUser):
    weight = 2
    wait_time = constant(WAIT)
    tasks = [FirstSignIn]


class SsoUser(HttpUser):
    weight = 1
    wait_time = constant(WAIT)
    tasks = [SsoSecondApplication]


class ResourceServerUser(HttpUser):
    weight = 1
    wait_time = constant(WAIT)
    tasks = [ResourceServer]


class ArchiveUser(HttpUser):
    weight = 1
    wait_time = constant(WAIT)
    tasks = [ArchiveDepositAndDownload]


class CatalogueUser(HttpUser):
    weight = 1
    wait_time = constant(WAIT)
    tasks = [CatalogueOrder]
