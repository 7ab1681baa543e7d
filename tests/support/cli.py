"""``martinique-connect …`` run in the test's process, through Typer's ``CliRunner``.

A real process spends seconds importing the platform before doing anything; in process, the
command costs what it does. The command reads its ``MC_*`` settings from the environment when
it runs, as a process would: ``run_cli`` gives it the environment a test would have given the
process (the ``MC_*`` variables missing from ``env`` are removed for the duration of the call)
and returns what ``subprocess.run`` would (``returncode``, ``stdout``, ``stderr``, kept apart).

The console script itself (exit code and one-line stderr for bad input, ``--help``,
``serve``) keeps a few real-process tests (``run_cli_process``).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer.testing import CliRunner

if TYPE_CHECKING:
    from plateforme.settings import Settings

PROGRAM = "martinique-connect"
# Variables the command reads from the environment, removed when ``env`` does not give them.
_OWNED = ("MC_", "PROMETHEUS_")


@dataclass(frozen=True)
class CliResult:
    """What ``subprocess.run(..., capture_output=True, text=True)`` would have returned."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_cli(env: Mapping[str, str], *args: str) -> CliResult:
    """Run ``martinique-connect *args`` in this process with the ``MC_*`` settings of ``env``
    (the other variables of ``env`` are ignored: they are this process's own)."""
    overrides: dict[str, str | None] = {
        key: None for key in os.environ if key.startswith(_OWNED) and key not in env}
    overrides.update({key: value for key, value in env.items() if key.startswith(_OWNED)})
    runner = CliRunner()
    # CliRunner.invoke would rebuild the Click command from the Typer app at every call
    # (~0.2 s of annotation evaluation): the isolation alone, around the command built once.
    with runner.isolation(env=overrides) as (stdout, stderr, _):
        try:
            code = _command().main(args=list(args), prog_name=PROGRAM, standalone_mode=False)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue(), stderr.getvalue()
    return CliResult([PROGRAM, *args], code, out.decode(runner.charset, "replace"),
                     err.decode(runner.charset, "replace"))


@functools.cache
def _command() -> Any:
    """The Click command of ``martinique-connect``, whose ``main`` reports errors as the
    console script does (one line on stderr, exit code 2 for bad input)."""
    from martinique_connect.cli import app

    return typer.main.get_command(app)


def run_cli_process(env: Mapping[str, str], *args: str, timeout: float = 120
                    ) -> subprocess.CompletedProcess[str]:
    """The real console script, in a process of its own (``env`` is its whole environment)."""
    program = os.path.join(os.path.dirname(sys.executable), PROGRAM)
    return subprocess.run([program, *args], env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment pointing at the instance of ``settings`` (a running platform's: its
    data directory, database, key-value store, secret key and issuer), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWNED)}
    env.update(MC_DATA_DIR=str(settings.data_dir), MC_SECRET_KEY=settings.secret_key or "",
               MC_ISSUER=settings.issuer, MC_REDIS_PREFIX=settings.redis_prefix)
    if settings.database_url:
        env["MC_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env["MC_REDIS_URL"] = settings.redis_url
    env.update(extra)
    return env
