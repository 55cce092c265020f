"""breachtrace: breach investigation from raw logs."""

__version__ = "0.1.0"
