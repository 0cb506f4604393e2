"""``python -m apps.cli``: the ``assistant`` command."""

from apps.cli.main import app

app()
