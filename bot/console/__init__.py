"""Offline console transport: a fake Bot API server and the ``bearbot chat`` loop on top of it."""
