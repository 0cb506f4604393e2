"""The ways people reach the graph: the CLI (``apps.cli``) and the graph pictures."""
