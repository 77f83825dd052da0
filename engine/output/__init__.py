"""Turning model text into what a platform may receive: post-processing and the one home of
each platform's output limits (``limits``)."""
