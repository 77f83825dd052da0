"""The ``costar`` command.

costar run                     start every configured adapter (console when none is)
costar run --console           also chat in this terminal
costar replay chat.jsonl       run a transcript through the manager, print replies
costar replay chat.jsonl --record out.jsonl
costar replay chat.jsonl --resume   continue a cut-short replay (stored lines are not answered again)
costar replay recorded.jsonl --expect --backend scripted
costar persona list            installed personas (and cards that failed to load)
costar persona show pip        the card and the system prompt it renders to
costar persona check card.png  validate a card file without installing it
costar model prepare           convert the built-in model and the embedding model once (make run does it too)
costar vllm-args               the `vllm serve` command for the installed personas' adapters
costar vllm-args --format shell --output deploy/vllm-args   (read by docker-compose.yml)
costar settings               every setting with its current value; secrets show as ********
costar stream check FILE       check a COSTAR_STREAM_COMMANDS_FILE, naming every problem in it
costar twitch auth             log the bot account in to Twitch once (device code)
costar twitch auth --broadcaster   log the channel owner in too: follows, cheers, redemptions
costar youtube auth            log the YouTube channel in once (Google's installed-app OAuth flow)

Each platform's login subcommand comes from its entry in bot.platforms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.errors import USER_ERRORS, one_line
from engine.observability.redact import install_secret_redaction
from engine.settings import Settings

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run

    return asyncio.run(run(settings, console=True if args.console else None, live=args.live))


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_manager, close_manager
    from bot.replay import replay
    from bot.shutdown import stop_signals

    if args.backend:
        settings.backend.kind = args.backend
    if args.expect:
        # Replies depend on what memory holds: checking against DATA_DIR's database would compare
        # with whatever earlier sessions left there, and would add this replay to it.
        scratch = tempfile.TemporaryDirectory(prefix="costar-expect-")
        settings.memory.db_path = Path(scratch.name) / "costar.sqlite3"
        if settings.backend.kind == "embedded" and settings.backend.seed is None:
            print("warning: --expect with the embedded model needs COSTAR_BACKEND_SEED (the one that recorded it)")

    async def go() -> int:
        manager = await build_manager(settings)
        try:
            with stop_signals() as stop:
                result = await replay(
                    manager,
                    Path(args.file),
                    record=Path(args.record) if args.record else None,
                    expect=args.expect,
                    ack=args.ack,
                    stop=stop,
                    grace_s=settings.core.shutdown_grace_s,
                    resume=args.resume,
                )
        finally:
            await close_manager(manager)  # flushes and closes memory, signal or not
        stopped = " (stopped by a signal)" if result.stopped else ""
        print(f"replayed {result.events} events, {result.replies} replies{stopped}", file=sys.stderr)
        for mismatch in result.mismatches:
            print(f"MISMATCH {mismatch}", file=sys.stderr)
        return 1 if result.mismatches else 0

    return asyncio.run(go())


def _cmd_persona(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import load_personas
    from personas.render import render_system_prompt

    if args.action == "check":
        return _check_card(Path(args.name), settings)
    registry = load_personas(settings, report=args.action != "list")  # list prints them itself
    if args.action == "list":
        for name in registry.names():
            card = registry.cards[name]
            marker = "*" if name == settings.core.default_persona else " "
            print(f"{marker} {name:20} {card.display_name:20} {registry.sources.get(name, '')}")
        for error in registry.errors:
            print(f"! {error}")
        return 0
    chosen = registry.get(args.name or settings.core.default_persona)
    if chosen is None:
        print(f"no persona named {args.name!r}; installed: {', '.join(registry.names())}", file=sys.stderr)
        return 2
    print(chosen.model_dump_json(indent=2, exclude_none=True))
    print("\n--- system prompt ---\n" + render_system_prompt(chosen))
    return 0


def _check_card(path: Path, settings: Settings) -> int:
    from bot.adapter_check import check_adapter
    from personas.loader import load_card

    card = load_card(path)
    adapter = check_adapter(card, path, settings.backend.model)
    for note in adapter.notes:
        print(f"note: {note}")
    if adapter.problems:
        print(f"costar: {path}: field 'model.adapter': {'; '.join(adapter.problems)}", file=sys.stderr)
        return 2
    bound = f", adapter {card.model.adapter.name} at {adapter.folder}" if card.model.adapter else ""
    print(
        f"ok: {card.name} ({card.persona_id}), {card.source_format}, {len(card.lorebook.entries)} lore entries{bound}"
    )
    return 0


def _cmd_model(args: argparse.Namespace, settings: Settings) -> int:
    from engine.serving.model_store import resolve_model_path

    path = resolve_model_path(settings.backend.model, settings.core.cache_dir)
    if not args.quiet:  # make run prepares on every start: a path printed each time is noise
        print(path)
    if settings.memory.embeddings == "local":  # unpacked and exported once, not at the first chat line
        from engine.serving.model_store import ensure_minilm

        embeddings = ensure_minilm(settings.core.cache_dir)
        if not args.quiet:
            print(embeddings)
    return 0


def _cmd_vllm_args(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import load_personas
    from engine.serving.vllm_args import plan_from_settings

    plan = plan_from_settings(
        settings,
        load_personas(settings),
        weights=args.model,
        max_loras=args.max_loras,
        server_adapter_dir=args.server_dir,
    )
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = plan.command() if args.format == "command" else shlex.join(plan.args())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def _cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    from engine.settings import describe_settings

    for name, value, is_default in describe_settings(settings):
        print(f"{name}={value}" + ("" if is_default else "   # set"))
    return 0


def _cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    from engine.stream.commands import load_channel_file

    channel = load_channel_file(Path(args.file))  # a SettingsError names every problem at once
    commands = ", ".join(f"!{command.name}" for command in channel.commands) or "none"
    timers = ", ".join(timer.name for timer in channel.timers) or "none"
    print(f"ok: {args.file}: commands {commands}; timers {timers}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="costar", description="An AI co-host for live streamers.")
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="start the bot")
    run.add_argument("--console", action="store_true", help="chat in this terminal too")
    run.add_argument(
        "--live",
        action="store_true",
        help="the console's channel is live from the start: timers and proactive talk run",
    )
    run.set_defaults(handler=_cmd_run)
    replay = commands.add_parser("replay", help="run a JSONL transcript through the bot")
    replay.add_argument("file")
    replay.add_argument("--record", help="write events and replies to this JSONL file")
    replay.add_argument("--expect", action="store_true", help="fail unless the recorded replies are reproduced")
    replay.add_argument("--ack", action="store_true", help="print ACK lines once chat lines and replies are committed")
    replay.add_argument(
        "--resume",
        action="store_true",
        help="continue a replay that was cut short: lines already stored are not answered again",
    )
    replay.add_argument("--backend", choices=["embedded", "openai", "scripted"], help="override COSTAR_BACKEND_KIND")
    replay.set_defaults(handler=_cmd_replay)
    persona = commands.add_parser("persona", help="list, show or check persona cards")
    persona.add_argument("action", choices=["list", "show", "check"])
    persona.add_argument("name", nargs="?", help="persona name (show) or card file (check)")
    persona.set_defaults(handler=_cmd_persona)
    model = commands.add_parser("model", help="prepare the embedded model")
    model.add_argument("action", choices=["prepare"])
    model.add_argument("--quiet", action="store_true", help="print nothing once the model is ready")
    model.set_defaults(handler=_cmd_model)
    vllm = commands.add_parser("vllm-args", help="print `vllm serve` arguments for the installed personas")
    vllm.add_argument("--model", help="weights vLLM loads (hub id or server folder); default: COSTAR_BACKEND_MODEL")
    vllm.add_argument("--max-loras", type=int, help="adapters active at once (default: COSTAR_BACKEND_MAX_LORAS)")
    vllm.add_argument(
        "--server-dir", help="the adapters folder as the server sees it (default: COSTAR_BACKEND_SERVER_ADAPTER_DIR)"
    )
    vllm.add_argument(
        "--format",
        choices=["command", "shell"],
        default="command",
        help="command: a readable `vllm serve` command; shell: the arguments on one quoted line",
    )
    vllm.add_argument("--output", help="write to this file instead of stdout")
    vllm.set_defaults(handler=_cmd_vllm_args)
    shown = commands.add_parser("settings", help="every setting with its current value (secrets masked)")
    shown.set_defaults(handler=_cmd_settings)
    stream = commands.add_parser("stream", help="check a COSTAR_STREAM_COMMANDS_FILE")
    stream.add_argument("action", choices=["check"])
    stream.add_argument("file", help="the YAML file of commands: and timers:")
    stream.set_defaults(handler=_cmd_stream)
    from bot.platforms import PLATFORMS

    for platform in PLATFORMS:
        if platform.add_commands is not None:
            platform.add_commands(commands)
    return parser


# costar's own packages log at COSTAR_LOG_LEVEL; everything else (httpx2, aiosqlite, discord,
# twitchio, openai, …) at COSTAR_LOG_LIBRARIES, WARNING unless asked: their INFO and DEBUG lines
# drown the chat.
_OUR_PACKAGES = ("bot", "engine", "memory", "personas", "finetune", "bench")


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(settings.core.log_libraries)
    for package in _OUR_PACKAGES:
        logging.getLogger(package).setLevel(settings.core.log_level)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = getattr(args, "handler", _cmd_run)
    if not hasattr(args, "console"):  # a bare `costar` runs
        args.console = args.live = False
    try:
        from bot.platforms import load_settings

        settings = load_settings(args.env_file)
        configure_logging(settings)
        install_secret_redaction(settings)
        return handler(args, settings)
    except USER_ERRORS as exc:
        print(f"costar: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
