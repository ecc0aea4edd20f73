"""Deterministic demo graphs (no network), registered in settings.STEPWISE_GRAPHS."""
