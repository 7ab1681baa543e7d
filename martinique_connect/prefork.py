"""Several workers forked from one parent that imported the application once.

``uvicorn.run(..., workers=N)`` starts each worker with the ``spawn`` method of
:mod:`multiprocessing`: a fresh interpreter that imports every library again (≈ 100 MB of
Python objects per worker, nothing shared). Here the parent (``serve``) imports the application
and its libraries once, freezes them out of the garbage collector's reach (:func:`gc.freeze`:
a collection in a worker would otherwise write to every object's header and copy its page),
then uvicorn's own supervisor *forks* the workers: they share those pages copy-on-write and
each worker only pays for what it writes (its application instance, its caches, argon2's
memory). The supervisor is uvicorn's, unchanged (health checks, a dead worker replaced, SIGTERM
and SIGHUP); only its start method differs.

Nothing may cross the fork that a worker would share by mistake: the parent opens no database
connection, key-value store connection or thread before forking (``serve`` closes what its
initialisation opened first; :mod:`idp.passwords` gives a forked worker its own pool), and
``PROMETHEUS_MULTIPROC_DIR`` is set before the metrics library is imported (it chooses its
multi-process storage at import; each worker then writes its own files, by pid).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from socket import socket
from typing import Any

# What every worker imports, besides the application, while it starts or serves its first
# requests (uvicorn's protocol and loop choices, the event loop's anyio backend, the OpenSSL
# backend of the first token): imported here, once.
_PRELOAD = (
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "anyio._backends._asyncio",
    "cryptography.hazmat.backends.openssl",
)


def preload() -> None:
    """Import the application's modules, then move every object they made out of the
    collector's generations (a worker never collects them: their pages stay shared)."""
    importlib.import_module("martinique_connect.app")
    for name in _PRELOAD:
        with contextlib.suppress(ImportError):  # a later uvicorn may name them otherwise
            importlib.import_module(name)
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def forked_workers() -> Iterator[None]:
    """Within this block, ``uvicorn.run(workers=N)`` forks its workers instead of spawning
    them (uvicorn creates each worker through ``get_subprocess``, with a ``spawn`` context)."""
    from uvicorn.supervisors import multiprocess

    fork = multiprocessing.get_context("fork")

    def get_subprocess(config: Any, target: Callable[..., None],
                       sockets: list[socket]) -> Any:
        # No stdin to reattach: multiprocessing gives a forked child /dev/null.
        return fork.Process(target=_worker, kwargs={
            "config": config, "target": target, "sockets": sockets, "stdin_fileno": None})

    original = multiprocess.get_subprocess
    multiprocess.get_subprocess = get_subprocess
    try:
        yield
    finally:
        multiprocess.get_subprocess = original


def _worker(**kwargs: Any) -> None:
    """In the forked worker: the signal handlers a spawned worker starts with (a fork inherits
    the supervisor's, which only queue the signal: a SIGTERM received while the worker builds
    its application would be lost), then uvicorn's start of a worker."""
    from uvicorn import _subprocess
    from uvicorn.supervisors import multiprocess

    for number in multiprocess.SIGNALS:
        signal.signal(number, signal.default_int_handler if number == signal.SIGINT
                      else signal.SIG_DFL)
    _subprocess.subprocess_started(**kwargs)
