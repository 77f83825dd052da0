"""The character hears the host: audio in, speech to text, and when to answer.

``audio`` holds the sources behind one interface (a WAV/PCM file or pipe; ``microphone`` adds
PortAudio devices), ``segmenter`` finds where speech starts and ends by its loudness, ``recognizer``
turns an utterance into text (Moonshine behind a small interface), ``wake`` tells whether the
character's name was heard, and ``listener`` runs the loop and hands each line to the manager.
See docs/hearing.md.
"""
