"""What the bot and the trainer share: settings, the label set, the model artifact contract, inference.

Nothing here imports Telegram or training code, except ``bearbot.cli``, the one place that wires
the whole application together (and it imports bot/trainer lazily, per command).
"""

__version__ = "0.1.0"
