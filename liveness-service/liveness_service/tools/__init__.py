"""Offline tools (train, dataset, evaluate, PAD error rates, MiniFASNet port): not needed to serve, not in the image."""
