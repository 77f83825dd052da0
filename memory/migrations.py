"""Numbered schema migrations, applied in order on open and recorded in ``schema_migrations``.

Never edit a migration that has shipped: add the next number instead.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            platform_user_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0,
            UNIQUE (platform, platform_user_id)
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            server_id TEXT,
            platform_message_id TEXT,
            user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
            author_name TEXT NOT NULL,
            is_character INTEGER NOT NULL DEFAULT 0,
            persona_id TEXT,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            reply_to_id TEXT,
            addressed INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX messages_by_channel ON messages (platform, channel_id, id);
        CREATE INDEX messages_by_user ON messages (user_id);
        CREATE INDEX messages_by_platform_id ON messages (platform, platform_message_id);
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            persona_id TEXT,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX notes_by_user ON notes (user_id);
        CREATE TABLE persona_choices (
            platform TEXT NOT NULL,
            scope TEXT NOT NULL CHECK (scope IN ('channel', 'server')),
            scope_id TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            set_by TEXT,
            set_at TEXT NOT NULL,
            PRIMARY KEY (platform, scope, scope_id)
        );
        CREATE TABLE summaries (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            persona_id TEXT,
            text TEXT NOT NULL,
            upto_message_id INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX summaries_by_channel ON summaries (platform, channel_id, id);
        """,
    ),
    Migration(
        2,
        "lines remember whether a moderator wrote them",
        # Moderators are exempt from input rules; the prompt builder needs to know whose line a
        # stored link was to keep the same exemption when it shows history to the model.
        "ALTER TABLE messages ADD COLUMN from_moderator INTEGER NOT NULL DEFAULT 0",
    ),
    Migration(
        3,
        "full-text recall of viewers' lines; notes remember the line they came from",
        # An FTS5 index over viewers' lines (the character's own lines are not recalled), fed by
        # triggers inside the very transaction that writes the line, so a group commit indexes
        # its whole batch or nothing. The speaker is indexed as a token too, so "this speaker's
        # lines about X" is an index intersection, not a scan. Its content is the messages table
        # seen through a view: the text is not stored twice.
        """
        CREATE VIEW messages_recall AS SELECT id, text, user_id FROM messages WHERE is_character = 0;
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, user_id, content='messages_recall', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.is_character = 0 BEGIN
            INSERT INTO messages_fts (rowid, text, user_id) VALUES (new.id, new.text, new.user_id);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.is_character = 0 BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, text, user_id) VALUES ('delete', old.id, old.text, old.user_id);
        END;
        INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', 8);
        INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
        ALTER TABLE notes ADD COLUMN source_message_id INTEGER;
        ALTER TABLE notes ADD COLUMN kind TEXT NOT NULL DEFAULT 'manual';
        CREATE INDEX notes_by_source ON notes (source_message_id);
        """,
    ),
    Migration(
        4,
        "a platform message is stored once; forget finds replies by index",
        # EventSub delivers at least once: a viewer line's platform id is unique, so a redelivered
        # message cannot be stored twice (copies already stored keep the first). The character's
        # replies are found by the line they answer when a viewer is forgotten: without an index
        # that was a scan of every row of the platform under the write lock.
        """
        DELETE FROM messages WHERE is_character = 0 AND platform_message_id IS NOT NULL AND EXISTS
            (SELECT 1 FROM messages first WHERE first.platform = messages.platform
             AND first.platform_message_id = messages.platform_message_id
             AND first.is_character = 0 AND first.id < messages.id);
        CREATE UNIQUE INDEX messages_once_per_platform_id ON messages (platform, platform_message_id)
            WHERE is_character = 0 AND platform_message_id IS NOT NULL;
        CREATE INDEX messages_replies_by_line ON messages (platform, reply_to_id) WHERE is_character = 1;
        """,
    ),
    Migration(
        5,
        "persona choices name who chose them by platform id, not display name",
        # Twitch switches used to record the moderator's display name, which a forget (keyed by
        # platform id) could not find; the column is informational, so old names are cleared.
        "UPDATE persona_choices SET set_by = NULL WHERE platform = 'twitch'",
    ),
    Migration(
        6,
        "summaries from before viewer names were kept out of system text are dropped",
        # A summary is system text and used to list who was talking by display name; each new
        # summary keeps the previous one's first sentence, so old names would never roll off.
        # Summaries are rebuilt as chat goes on.
        "DELETE FROM summaries",
    ),
    Migration(
        7,
        "lines and notes keep the place they were said in (DM, server, channel)",
        # A disclosure made in a DM became a note in every public prompt on the platform, and any
        # server's moderator could list it (memory.scopes). Stored lines get their place from
        # what they recorded: no server on Discord means a DM (a private server channel cannot
        # be told apart afterwards and counts as its server). A note takes its source line's
        # place; a note without one (manual, reflection, its line gone) takes the one place its
        # viewer ever spoke in on a platform without DMs, else the safe default "private": shown
        # only in the viewer's DMs and to the viewer, never in a public prompt or to a moderator.
        """
        ALTER TABLE messages ADD COLUMN scope TEXT;
        UPDATE messages SET scope = CASE
            WHEN server_id IS NOT NULL THEN 'server:' || server_id
            WHEN platform = 'discord' THEN 'dm:' || channel_id
            ELSE 'channel:' || channel_id END;
        ALTER TABLE notes ADD COLUMN scope TEXT;
        UPDATE notes SET scope = (SELECT m.scope FROM messages m WHERE m.id = notes.source_message_id)
            WHERE source_message_id IS NOT NULL;
        UPDATE notes SET scope = (SELECT min(m.scope) FROM messages m JOIN users u ON u.id = m.user_id
            WHERE m.user_id = notes.user_id AND u.platform != 'discord' HAVING count(DISTINCT m.scope) = 1)
            WHERE scope IS NULL;
        UPDATE notes SET scope = 'private' WHERE scope IS NULL;
        """,
    ),
    Migration(
        8,
        "sentence vectors of viewers' lines and of notes, for recall by meaning",
        # One row per embedded line or note, in the same file as what it embeds, deleted with it
        # (ON DELETE CASCADE: forget needs no step of its own); a vector goes when its text changes
        # (a forget redacts the forgotten viewer's name in others' lines: the old vector encoded it). A vector is float32 bytes, L2-normalised;
        # ``space`` names the embedder that made it, so a changed model never compares vectors of two
        # spaces. Searches stay small by reading one speaker's vectors or one channel's newest, through
        # these indexes, never the whole table. IF NOT EXISTS: a test that replays older migrations
        # over a newer file runs this one twice.
        """
        CREATE TABLE IF NOT EXISTS vector_spaces (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            dimensions INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS message_vectors (
            message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
            space INTEGER NOT NULL REFERENCES vector_spaces(id),
            user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
            platform TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE INDEX IF NOT EXISTS message_vectors_by_user ON message_vectors (user_id, space, message_id);
        CREATE INDEX IF NOT EXISTS message_vectors_by_channel ON message_vectors (platform, channel_id, space, message_id);
        CREATE TABLE IF NOT EXISTS note_vectors (
            note_id INTEGER PRIMARY KEY REFERENCES notes(id) ON DELETE CASCADE,
            space INTEGER NOT NULL REFERENCES vector_spaces(id),
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            vector BLOB NOT NULL
        );
        CREATE INDEX IF NOT EXISTS note_vectors_by_user ON note_vectors (user_id, space);
        CREATE TRIGGER IF NOT EXISTS message_vectors_follow_text AFTER UPDATE OF text ON messages BEGIN
            DELETE FROM message_vectors WHERE message_id = old.id;
        END;
        CREATE TRIGGER IF NOT EXISTS note_vectors_follow_text AFTER UPDATE OF text ON notes BEGIN
            DELETE FROM note_vectors WHERE note_id = old.id;
        END;
        """,
    ),
    Migration(
        10,
        "a viewer line's recall index entry follows its text; the character's lines by channel",
        # A forget replaces the forgotten viewer's name in other viewers' lines (memory.forget);
        # the external-content index must drop the old terms and take the new ones in the same
        # transaction, or the name would stay findable in the index pages. It also reads the
        # character's lines of a channel since the viewer's first line there: without an index
        # that walked every line of the channel (0.33 s a forget at 200,000 lines).
        """
        CREATE INDEX IF NOT EXISTS messages_said_by_character ON messages (platform, channel_id, id)
            WHERE is_character = 1;
        CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF text ON messages WHEN old.is_character = 0 BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, text, user_id) VALUES ('delete', old.id, old.text, old.user_id);
            INSERT INTO messages_fts (rowid, text, user_id) VALUES (new.id, new.text, new.user_id);
        END;
        """,
    ),
    Migration(
        11,
        "notes say which single-valued topic they are about",
        # "I live in York" and, later, "actually I moved to Leeds" are both about where the viewer
        # lives: the newer one is current. NULL for notes that may stand side by side (likes, pets).
        "ALTER TABLE notes ADD COLUMN topic TEXT",
    ),
    Migration(
        12,
        "the streamer's controls: mutes that survive a restart, and the review of each held reply",
        # scope: "*" (everything), a platform ("twitch") or a channel key ("twitch:12345").
        # review: approved / edited / dropped / stale when approve-before-send held the reply;
        # draft: the model's text when the streamer edited it (a fine-tuning signal).
        """
        CREATE TABLE IF NOT EXISTS mutes (
            scope TEXT PRIMARY KEY,
            muted_at TEXT NOT NULL
        );
        ALTER TABLE messages ADD COLUMN review TEXT;
        ALTER TABLE messages ADD COLUMN draft TEXT;
        """,
    ),
)
