"""Mappings and reference data shipped with breachtrace (read with importlib.resources)."""
