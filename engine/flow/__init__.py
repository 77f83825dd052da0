"""The reply flow: which lines get answered, when, and within which send budget.

Owns the :class:`~engine.flow.scheduler.ReplyScheduler`, the sliding-window send budget
(``ratelimit``) and the reply activity the background work gives way to (``activity``). The
clocks, cooldowns and bounded tables they use live in :mod:`engine.base`.
"""
