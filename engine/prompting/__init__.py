"""Building what the model reads: the prompt layout, per-turn context, token counting, and the
one viewer-line format that serving and training share (``lines``)."""
