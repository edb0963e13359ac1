"""Offline tools (bulk encoding, evaluation): not needed to serve, and not in the service image."""
