"""Update handlers, one module per conversation topic; :mod:`bot.app` lists them in order."""
