"""What every ``assistant`` command shares: the consoles and loading settings."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape

from graph.settings import Settings, SettingsError, load_settings

out = Console()
err = Console(stderr=True)


def cli_settings() -> Settings:
    """Load the settings and configure logging; invalid settings end the command (exit 2)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return settings
