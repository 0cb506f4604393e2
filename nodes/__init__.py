"""Graph nodes, one module each; every module exposes a ``make_*`` factory."""
