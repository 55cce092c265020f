"""Readers for the log formats responders collect, and the ingest runner."""
