"""Platform adapters (console, Discord, Twitch) and the ``costar`` command line."""
