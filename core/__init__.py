"""The conversation core: what the bot decides, whatever the transport (Telegram, Discord, the console).

Adapters build :mod:`core.events`, call :meth:`core.conversation.Conversation.handle` with a
:class:`core.replies.Replier`, and register a :class:`core.replies.Outbox`. Nothing here imports
a transport's library.
"""
