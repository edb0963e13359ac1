"""faceauth's web tier: accounts, enrollment, face login, admin."""
