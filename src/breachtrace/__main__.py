"""``python -m breachtrace`` runs the command line."""

from breachtrace.cli import app

app()
