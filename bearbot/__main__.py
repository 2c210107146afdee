"""``python -m bearbot`` is the same as the ``bearbot`` command."""

from bearbot.cli import main

main()
