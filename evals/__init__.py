"""Evaluation: corpora (``evals/corpora/``) and the harness that runs, scores and reports them."""
