"""Triggers of the provider's deferrable sensors: they only poll, the work runs back in a worker."""
