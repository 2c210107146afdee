"""Persistence: SQLAlchemy models, the engine/session factory, the image store, data access.

Knows nothing of Telegram or fastai. Imports only ``bearbot.settings``/``bearbot.imaging``.
"""
