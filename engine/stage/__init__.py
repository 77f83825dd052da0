"""The stage: what the character shows and says on the stream itself (captions, voice).

The manager publishes each reply's life here (:mod:`engine.stage.reply`); the overlay server,
the voice and OBS control subscribe (:class:`engine.stage.feed.Stage`). Other engine outputs
(stream-event reactions) publish a :class:`engine.stage.cues.NoticeCue` through the same feed.
"""
