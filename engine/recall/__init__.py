"""Long-term memory at reply time: which past lines and notes the character gets to see.

Owns the query terms taken from a new line (``terms``), the notes written from viewers' own
self-disclosures (``disclosures``), the block of remembered things put in front of the new line
(``block``), and the optional idle-time reflection that asks the model for durable facts and
channel summaries (``reflection``). Storage and full-text search are :mod:`memory`'s.
"""
