"""The streamer's controls over the bot: what the dashboard watches (the room's feed)."""
