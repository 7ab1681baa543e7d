"""``martinique-connect archives …``: deposit, export, audit, seal, verify-logbook.

There is deliberately no command that deletes a unit or a file: elimination goes through the
bordereau and the archival authority's visa (API or console), nothing else.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

archives_app = typer.Typer(no_args_is_help=True,
                           help="Archives : versement, export, audit d'intégrité, journal.")


def _archives() -> Any:
    from martinique_connect.cli import _provider
    from martinique_connect.wiring import build_archives

    provider = _provider()
    archives = build_archives(provider.settings, provider.engine, provider)
    archives.start()
    return archives


@archives_app.command("verify-logbook")
def verify_logbook(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recompute the logbook's chain and seals; exit code 1 names the first broken entry."""
    report = _archives().integrity.verify()
    if as_json:
        typer.echo(json.dumps(report.__dict__, ensure_ascii=False))
    elif report.ok:
        typer.echo(f"journal intègre : {report.entries} entrées, {report.seals} scellements")
        for warning in report.warnings:
            typer.echo(f"attention : {warning}")
    else:
        where = []
        if report.first_broken_entry is not None:
            where.append(f"première entrée rompue : n° {report.first_broken_entry}")
        if report.first_broken_seal is not None:
            where.append(f"premier scellement rompu : n° {report.first_broken_seal}")
        typer.echo(f"journal ROMPU — {', '.join(where)} ({report.reason})", err=True)
    if not report.ok:
        raise typer.Exit(1)


@archives_app.command("seal")
def seal() -> None:
    """Seal the logbook entries written since the last seal."""
    sealed = _archives().integrity.seal(agent="cli")
    if sealed is None:
        typer.echo("rien à sceller")
    else:
        typer.echo(f"scellement n° {sealed.seq} : entrées {sealed.first_seq} à "
                   f"{sealed.last_seq}, racine {sealed.merkle_root}")


@archives_app.command("audit")
def audit(
    repair: Annotated[bool, typer.Option(help="Réparer les copies abîmées.")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fixity audit of every copy of every file; exit code 1 when a copy is bad."""
    report = _archives().integrity.audit(trigger="on demand", actor="cli", repair=repair)
    summary = {"id": report.id, "checked": report.checked, "copies_ok": report.copies_ok,
               "missing": report.missing, "corrupt": report.corrupt,
               "unavailable": report.unavailable, "repaired": report.repaired,
               "details": json.loads(report.details)}
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        typer.echo(f"audit {report.id} : {report.checked} fichiers, {report.copies_ok} copies "
                   f"saines, {report.missing} manquantes, {report.corrupt} altérées, "
                   f"{report.repaired} réparées")
    unrepaired = report.missing + report.corrupt - report.repaired
    if unrepaired > 0 or report.unavailable:
        raise typer.Exit(1)


@archives_app.command("deposit")
def deposit(
    files: Annotated[list[Path], typer.Argument(help="Fichiers à verser.")],
    org: Annotated[str, typer.Option(help="Organisation productrice (slug).")],
    title: Annotated[str, typer.Option(help="Intitulé.")],
    metadata: Annotated[str | None, typer.Option(help="Autres métadonnées (JSON).")] = None,
    deposit_id: Annotated[str | None, typer.Option(help="Identifiant de versement.")] = None,
) -> None:
    """Deposit files for an organisation (as an archivist of it); prints the acknowledgement."""
    from archivage import Actor, DepositMetadata, IncomingFile
    from martinique_connect.cli import _fail
    from plateforme.blobs import receive

    for path in files:
        if not path.is_file():
            _fail(f"fichier introuvable : {path}")
    extra = json.loads(metadata) if metadata else {}
    if not isinstance(extra, dict):
        _fail("--metadata attend un objet JSON")
    details = DepositMetadata.model_validate({**extra, "title": title,
                                              **({"deposit_id": deposit_id} if deposit_id
                                                 else {})})
    archives = _archives()
    actor = Actor(subject="cli", organisation=org, roles=frozenset({"archivist"}))
    archives.deposits.precheck(actor, sum(p.stat().st_size for p in files))
    staging = archives.deposits.staging_dir()

    async def stage(path: Path) -> Any:
        async def chunks() -> Any:
            with path.open("rb") as fh:
                while block := fh.read(1024 * 1024):
                    yield block

        return await receive(chunks(), staging,
                             max_bytes=archives.config.max_deposit_bytes)

    import shutil

    try:
        incoming = [IncomingFile(p.name, asyncio.run(stage(p))) for p in files]
        ack, _ = archives.deposits.deposit(actor, details, incoming)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    typer.echo(json.dumps(ack, ensure_ascii=False, indent=2))


@archives_app.command("export")
def export(
    unit: Annotated[str, typer.Argument(help="Identifiant de l'unité (mc…).")],
    org: Annotated[str, typer.Option(help="Organisation qui exporte (propriétaire ou "
                                          "destinataire d'un partage).")],
    output: Annotated[Path, typer.Option(help="Fichier ZIP à écrire.")],
) -> None:
    """Export a unit and what lies below it as a zipped BagIt bag (SEDA manifest, logbook)."""
    from archivage import Actor
    from martinique_connect.cli import _fail

    if output.exists():
        _fail(f"le fichier existe déjà : {output}")
    archives = _archives()
    actor = Actor(subject="cli", organisation=org, roles=frozenset({"archivist"}))
    output.parent.mkdir(parents=True, exist_ok=True)
    archives.export(actor, unit, output.resolve())
    typer.echo(f"unité {unit} exportée : {output}")
