"""``bearbot models``: list versions with their metrics, activate one, roll back."""

from __future__ import annotations

import typer

from bearbot.cli.common import fail, settings_or_exit

app = typer.Typer(no_args_is_help=True)


def _fmt_metrics(metrics: dict[str, object]) -> str:
    err = metrics.get("golden_error", metrics.get("error_rate"))
    return f"golden error {err:.2%}" if isinstance(err, float) else "-"


@app.command("list")
def list_cmd() -> None:
    """Show every model version: id, active mark, architecture, golden error, created, artifact."""
    from storage import model_versions
    from storage.store import open_storage

    with open_storage(settings_or_exit()) as store, store.session() as session:
        versions = model_versions.list_versions(session)
        if not versions:
            typer.echo("no model versions yet (the built-in zero-shot model is recorded as v1 on first use)")
        for v in versions:
            mark = "*" if v.is_active else " "
            artifact = v.artifact_path or "(built-in zero-shot)"
            created = v.created_at.strftime("%Y-%m-%d %H:%M")
            typer.echo(f"{mark} v{v.id:<3} {v.arch:<20} {_fmt_metrics(v.metrics):<22} {created}  {artifact}")
            if v.load_error:  # a bot could not load it (and fell back), or its file was cleaned up
                typer.echo(f"         ! cannot be loaded: {v.load_error.splitlines()[0][:200]}")


@app.command("rollback")
def rollback_cmd() -> None:
    """Re-activate the version the active one replaced (the running bot swaps within seconds)."""
    from storage import model_versions
    from storage.store import open_storage

    with open_storage(settings_or_exit()) as store, store.session() as session:
        target = model_versions.rollback(session)
        if target is None:
            raise fail("nothing to roll back to: the active version has no predecessor")
        typer.echo(f"active model is now v{target.id}")


@app.command("activate")
def activate_cmd(version: int = typer.Argument(..., help="Model version id (see `bearbot models list`).")) -> None:
    """Make VERSION the active model."""
    from storage import model_versions
    from storage.store import open_storage

    with open_storage(settings_or_exit()) as store, store.session() as session:
        try:
            model_versions.activate_version(session, version_id=version)
        except LookupError as exc:
            raise fail(str(exc)) from None
        typer.echo(f"active model is now v{version}")
