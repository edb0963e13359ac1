"""Code shared by every faceauth service (installed as the ``faceauth-common`` package)."""
