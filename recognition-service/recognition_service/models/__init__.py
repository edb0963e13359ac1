"""Model files shipped with the service (see MODEL_CARD.md); package data, loaded by path."""
