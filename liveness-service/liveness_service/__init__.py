"""Liveness / presentation-attack detection (faceauth.liveness.v1)."""
