"""The Telegram transport: python-telegram-bot in, the conversation core behind it."""
