"""ConversationManager: from a stored chat line to a stored, post-processed in-character reply.

One way in, one way out. Every caller (console, Discord, Twitch, replay, benchmarks) does:

1. ``heard = await manager.hear(event)`` for every line: commits it, counts it towards copypasta
   waves, judges it in full if it addresses the character, and returns a :class:`HeardLine`
   that says whether (``heard.blocked``) and how urgently (``heard.priority``) it may be answered;
2. passes ``heard`` on unchanged — to :class:`engine.flow.scheduler.ReplyScheduler.submit`, or
   to :meth:`reply` / :meth:`reply_stream` / :meth:`generate`;
3. ``await manager.link_sent(reply, platform_message_id)`` once the platform took the reply.

Replies in one channel are generated one at a time so history stays append-only; different
channels run concurrently up to ``COSTAR_BACKEND_MAX_CONCURRENCY``.

The package, one job per module: ``conversation`` (the manager: hearing, personas, the
streamer's controls, the viewer verbs), ``replies`` (the reply pipeline), ``prompts`` (each
channel's prompt window) and ``turns`` (what they share).
"""

from __future__ import annotations

from engine.heard import HeardLine
from engine.manager.conversation import AboutUser, ConversationManager

__all__ = ["AboutUser", "ConversationManager", "HeardLine"]
