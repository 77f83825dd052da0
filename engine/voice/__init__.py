"""The character's voice: sentences of a streaming reply become speech while the rest is generated.

``synth`` holds the engines behind one small interface (espeak-ng, piper), ``sentences`` cuts a
growing reply into sentences, and ``speaker`` listens on the stage and publishes audio cues.
"""
