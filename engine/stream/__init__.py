"""Stream events and the character's own initiative: thanks for raids, subs and follows, the
channel's custom ``!commands`` and timers, and proactive talk when chat goes quiet.

Adapters turn platform notifications into a neutral :class:`~engine.events.StreamEvent`
and hand it to the same ``manager.hear`` every chat line goes through (stored, de-duplicated);
the :class:`~engine.stream.director.StreamDirector` then decides what, if anything, the character
says, and gives each line to the adapter as an :class:`~engine.stream.outlet.Utterance`.
"""
