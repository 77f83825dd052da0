"""One reply's life on the stage: snapshots while it streams, the final text, or a retraction.

The manager wraps each reply it generates in a :class:`StagedReply` while anyone watches the
stage. Only text that passed output moderation reaches it (the manager's snapshots are checked
before they are yielded), and the line being answered is shown only if input moderation let it
through unchanged or fixed.
"""

from __future__ import annotations

from engine.events import Reply
from engine.heard import HeardLine
from engine.stage.cues import NoticeCue, ReplyCue, ReplyState
from engine.stage.feed import Stage
from personas.card import PersonaCard

__all__ = ["StagedReply", "notice_for"]


def notice_for(stage: Stage, heard: HeardLine, persona: PersonaCard, text: str) -> NoticeCue:
    """A finished fixed line (a stream-event reaction's template, a command's text) for the stage."""
    event = heard.event
    kind = heard.stream.kind if heard.stream is not None else "command"
    return NoticeCue(
        stage.new_id(),
        event.channel_key,
        persona.persona_id,
        persona.display_name,
        text,
        kind=str(kind),
        viewer_id=event.author_id,
    )


class StagedReply:
    def __init__(self, stage: Stage, heard: HeardLine, persona: PersonaCard) -> None:
        self.stage = stage
        self.heard = heard
        self.persona = persona
        self.cue_id = stage.new_id()
        self.shown = ""
        self.finished = False

    def take(self, item: str | Reply) -> None:
        """Pass on one item of ``manager.generate``: a snapshot (``""`` retracts) or the stored Reply."""
        if isinstance(item, Reply):
            self._publish(item.text, ReplyState.DONE)
        elif item:
            self._publish(item, ReplyState.STREAMING)
        elif self.shown:
            self._publish("", ReplyState.RETRACTED)

    def close(self) -> None:
        """The reply ended (finished, dropped, failed or cancelled): nothing half-said stays on screen."""
        if not self.finished and self.shown:
            self._publish("", ReplyState.RETRACTED)

    def _publish(self, text: str, state: ReplyState) -> None:
        author, answering = self._answering()
        event = self.heard.event
        self.stage.publish(
            ReplyCue(
                cue_id=self.cue_id,
                channel=event.channel_key,
                persona_id=self.persona.persona_id,
                persona_name=self.persona.display_name,
                text=text,
                state=state,
                answering_author=author,
                answering_text=answering,
                heard_at=self.heard.stored_at,
                viewer_id=event.author_id,
            )
        )
        self.shown = text
        self.finished = state is not ReplyState.STREAMING

    def _answering(self) -> tuple[str | None, str | None]:
        verdict = self.heard.verdict
        if verdict is None or not verdict.passes or not verdict.text:
            return None, None
        return self.heard.event.author_name, verdict.text
