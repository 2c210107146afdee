"""The Discord adapter: discord.py's messages, slash commands and buttons in, the core's replies out."""
