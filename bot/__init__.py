"""The Telegram side of bearbot: handlers, the model holder and the application factory."""
