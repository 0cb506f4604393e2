"""The ``assistant`` command line."""

from apps.cli.main import app

__all__ = ["app"]
