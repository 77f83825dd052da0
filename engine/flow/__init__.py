"""The reply flow: which lines get answered, when, and within which send budget.

Owns the :class:`~engine.flow.scheduler.ReplyScheduler`, the sliding-window send budget
(``ratelimit``), the one cooldown helper (``cooldown``) and the clocks they all read (``clock``:
one convention, monotonic seconds as a float).
"""
