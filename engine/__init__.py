"""The conversation engine: platform-neutral events, prompt building, LLM backends.

Nothing in this package imports discord or twitchio; adapters in ``bot/`` translate platform
events into :class:`engine.events.ChatEvent` and replies back into platform messages.
"""
