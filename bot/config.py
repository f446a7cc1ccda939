"""Settings: environment (``PERSONABRIDGE_`` prefix, ``__`` between levels), ``.env``,
and an optional TOML file (``PERSONABRIDGE_CONFIG``, default ``./personabridge.toml``).

Precedence, highest first: environment, ``.env``, TOML file, defaults. Settings load once,
into frozen objects, by :func:`load_as`; nothing here reads the environment at import
time.

This module declares the core's settings and the types every section shares (URLs,
paths, comma-separated lists). Each platform adapter declares its own section beside its
code (``adapters/telegram/settings.py``, ``adapters/discord/settings.py``), on these
types; :mod:`bot.app_settings` (wiring, since the core knows no adapter) composes the
core's settings and the adapters' sections into the application's, and its
``load_settings`` is what the application calls. An invalid value raises
:class:`~bot.errors.ConfigError` naming the setting as it is spelled in the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from bot.config_names import check_environment_names, check_file_names, file_location
from bot.errors import ConfigError

S = TypeVar("S", bound="CoreSettings")

ENV_PREFIX = "PERSONABRIDGE_"
DEFAULT_CONFIG_FILE = "./personabridge.toml"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"

# No setting means infinity or NaN: "inf" as a timeout or a rate is a typo, not a wish.
#: The model config of every settings section, the core's and the adapters' own.
SECTION_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
_Frozen = SECTION_CONFIG
PositiveFloat = Annotated[float, Field(gt=0)]


def _split(value: Any) -> Any:
    """``"a, b"`` -> ``("a", "b")``: lists are comma-separated in the environment."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


IdList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split)]
IntList = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_split)]


def _url_check(*schemes: str) -> Callable[[str], str]:
    """A validator: ``value`` is an absolute URL of one of ``schemes``, with a host.
    (The message never repeats the value: a URL may carry a password.)"""

    def check(value: str) -> str:
        try:
            parts = urlsplit(value)
            absolute = parts.scheme in schemes and bool(parts.hostname)
        except ValueError:  # e.g. "http://[::1"
            absolute = False
        if not absolute or re.search(r"[\s\x00-\x1f]", value):
            raise ValueError(f"expected a URL ({' or '.join(schemes)}) with a host")
        return value

    return check


def shown_url(url: str) -> str:
    """``url`` fit for a message or a log line: without a user name or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an invalid URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _path_check(value: Path) -> Path:
    if "\0" in str(value):
        raise ValueError("a path cannot contain a NUL character")
    return value


HttpUrl = Annotated[str, AfterValidator(_url_check("http", "https"))]
WsUrl = Annotated[str, AfterValidator(_url_check("ws", "wss"))]
FilePath = Annotated[Path, AfterValidator(_path_check)]


def _empty_is_unset(value: Any) -> Any:
    """``VAR=`` (set but empty) in the environment means "not set" for optional URLs."""
    return None if value == "" else value


EmptyIsUnset = BeforeValidator(_empty_is_unset)


class StoreSettings(BaseModel):
    model_config = _Frozen

    kind: Literal["sqlite", "dynamodb"] = "sqlite"
    sqlite_path: FilePath = Path("./data/personabridge.db")
    dynamodb_table: str = "personabridge"
    dynamodb_endpoint_url: Annotated[HttpUrl | None, EmptyIsUnset] = None
    dynamodb_region: str | None = None
    #: Seconds between two purges of expired link codes and web sessions (one at start).
    purge_interval: PositiveFloat = 3600.0


class WebSettings(BaseModel):
    """The HTTP server (``WEB__*``). Declared here rather than beside the web adapter:
    the wiring reads it for the worker processes that share its port, and the platform
    adapters for the public address their webhooks are reached at."""

    model_config = _Frozen

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: Annotated[HttpUrl | None, EmptyIsUnset] = None
    secure_cookies: bool = False
    #: Seconds a web session checked live is trusted without asking the store again: a
    #: session revoked on another worker stops working here within this time (0: off).
    session_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    #: Processes serving the web port (SO_REUSEPORT); one runs the gateway clients.
    workers: int = Field(default=1, ge=1, le=64)
    #: Reverse proxies (addresses or CIDR networks, comma-separated) whose forwarded
    #: header names the client: the right-most address in it that is not one of them.
    trusted_proxies: IdList = ()
    #: The header those proxies append to: ``x-forwarded-for`` (AWS ALB, nginx) or
    #: ``forwarded`` (RFC 7239). The other one is never read.
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    #: Seconds a client may take to send a request's headers, and then its body; a
    #: slower one is disconnected (one byte every few seconds must not hold a connection).
    header_timeout: PositiveFloat = 10.0
    body_timeout: PositiveFloat = 30.0

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
        return value

    @property
    def base_url(self) -> str:
        """``public_url`` when set, else derived from host and port."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


class OpenAISettings(BaseModel):
    """An OpenAI-compatible API. The backend is on when ``api_key`` is set, or
    ``base_url`` names another server (Ollama, vLLM, LM Studio and llama.cpp need no
    key). Sampling options here are defaults for personas that do not set their own
    (``backend_options`` in the card); unset means the server's default."""

    model_config = _Frozen

    base_url: HttpUrl = DEFAULT_OPENAI_BASE_URL
    api_key: SecretStr | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    #: Ask for token usage at the end of each stream (turn off for servers that refuse it).
    include_usage: bool = True
    #: Whether models take images, for cards that do not say (``backend_options.vision``).
    vision: bool = False

    @property
    def enabled(self) -> bool:
        return self.api_key is not None or (
            self.base_url.rstrip("/") != DEFAULT_OPENAI_BASE_URL.rstrip("/")
        )

    def sampling(self) -> dict[str, float | int]:
        """The sampling defaults that are set."""
        options: dict[str, float | int | None] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }
        return {name: value for name, value in options.items() if value is not None}


class PromptSettings(BaseModel):
    """How prompts are laid out for backends that take one (the OpenAI-compatible one):
    the model's context in tokens, the lorebook's share of it (unless a card's book
    sets its own budget), and the defaults a card's prompts replace (``{{original}}``
    in a card's system prompt or post-history instructions stands for them)."""

    model_config = _Frozen

    context_tokens: int = Field(default=8192, ge=256, le=10_000_000)
    lorebook_share: float = Field(default=0.25, ge=0, le=1)
    #: The main prompt for cards without a system prompt (unset: SillyTavern's default).
    main_prompt: str | None = None
    #: The post-history instructions for cards without them.
    post_history: str = ""


class TranscriptionSettings(BaseModel):
    """Speech to text for voice notes, through an OpenAI-compatible
    ``audio/transcriptions`` endpoint (OpenAI's, or a local Whisper server). Off unless
    ``base_url`` or ``api_key`` is set."""

    model_config = _Frozen

    base_url: HttpUrl | None = None
    api_key: SecretStr | None = None
    model: str = "whisper-1"

    @property
    def enabled(self) -> bool:
        return self.base_url is not None or self.api_key is not None


class SpeechSettings(BaseModel):
    """Replies read aloud (``/voice on``), through an OpenAI-compatible ``audio/speech``
    endpoint (OpenAI's, or a local server such as openedai-speech or Kokoro-FastAPI).
    Off unless ``base_url`` or ``api_key`` is set. A persona's card may name its own
    ``voice``."""

    model_config = _Frozen

    base_url: Annotated[HttpUrl | None, EmptyIsUnset] = None
    api_key: SecretStr | None = None
    model: str = Field(default="tts-1", min_length=1)
    #: The voice of personas whose card names none.
    voice: str = Field(default="alloy", min_length=1)
    #: What the server is asked for: Ogg Opus is what Telegram's voice messages take.
    format: Literal["opus", "mp3", "aac", "flac", "wav"] = "opus"
    #: Characters of a reply read aloud; a longer reply is cut at a word before it.
    max_chars: int = Field(default=1000, ge=1, le=4096)
    #: Seconds the speech server has to answer; past it, the reply stays text only.
    timeout: PositiveFloat = 30.0

    @property
    def enabled(self) -> bool:
        return self.base_url is not None or self.api_key is not None


class MediaSettings(BaseModel):
    """Limits on the files sent with messages (images, voice notes, text files)."""

    model_config = _Frozen

    #: Bytes per file; Telegram's cloud Bot API serves downloads up to 20 MB.
    max_bytes: int = Field(default=20_000_000, ge=1, le=200_000_000)
    #: Pixels per image, decoded: more is refused before decoding (decompression bombs).
    max_pixels: int = Field(default=50_000_000, ge=1, le=1_000_000_000)
    #: The longest side of an image as the persona sees it; larger images are scaled down.
    max_image_side: int = Field(default=1568, ge=16, le=8192)
    #: Characters of a text file the persona reads; the rest is cut off. (The default
    #: leaves room for history in the default 12,000-character window.)
    max_text_chars: int = Field(default=8_000, ge=100, le=1_000_000)
    #: Files per message; more are refused.
    max_files: int = Field(default=4, ge=0, le=32)
    download_timeout: PositiveFloat = 30.0
    transcription_timeout: PositiveFloat = 60.0
    #: Bytes of normalised images this process keeps (the latest message's, per
    #: conversation, for half an hour) so that /retry shows them again; 0: none kept.
    retry_images_bytes: int = Field(default=64_000_000, ge=0, le=2_000_000_000)


class CharacterAISettings(BaseModel):
    model_config = _Frozen

    token: SecretStr | None = None


class OfflineSettings(BaseModel):
    model_config = _Frozen

    seed: int | None = None
    #: Pause between streamed words, so a reply reads as it is written in the browser.
    word_delay: float = Field(default=0.0, ge=0, le=2)


class EngineSettings(BaseModel):
    """How much history a message sees, and how the backend is guarded."""

    model_config = _Frozen

    window_max_turns: int = Field(default=40, ge=1, le=1000)
    window_max_chars: int = Field(default=12_000, ge=200)
    first_delta_timeout: PositiveFloat = 30.0
    total_timeout: PositiveFloat = 120.0
    retries: int = Field(default=1, ge=0, le=5)
    retry_backoff: float = Field(default=0.5, ge=0)
    forget_confirm_seconds: PositiveFloat = 300.0
    #: Longer messages are refused with a clear answer and not stored (Telegram's own
    #: limit is 4096 characters, Discord's 2000, or 4000 with Nitro).
    max_message_chars: int = Field(default=4096, ge=1, le=1_000_000)
    #: Transient failures in a row after which a backend is skipped (0: never skipped)...
    breaker_failures: int = Field(default=5, ge=0)
    #: ...for this many seconds; then one message tries it again.
    breaker_cooldown: PositiveFloat = 30.0
    #: Tell the user when a fallback backend wrote the reply (a line after it, not stored).
    fallback_note: bool = False
    #: Keep a running summary of what left the window (backends that can summarise).
    summary: bool = True
    #: How many turns must have left the window before they are summarised.
    summary_batch_turns: int = Field(default=8, ge=1, le=200)
    #: The longest a summary may be; it counts against window_max_chars.
    summary_max_chars: int = Field(default=1500, ge=100, le=20_000)
    #: Seconds a worker holds a conversation it answers (bot.leases), renewed every third
    #: of it while a reply streams: a killed worker's conversation is free after it.
    lease_seconds: float = Field(default=30.0, ge=1.0)
    #: Seconds a message waits for another worker's answer in the same conversation.
    lease_wait_seconds: float = Field(default=60.0, ge=0)


class LinkingSettings(BaseModel):
    """Linking a platform identity to a web account (``/link CODE``, then a confirmation)."""

    model_config = _Frozen

    #: How long ``/link CODE`` waits for the same identity's confirmation.
    confirm_seconds: PositiveFloat = 300.0
    #: The most link codes an account holds at once; a new one replaces the oldest.
    max_live_codes: int = Field(default=5, ge=1, le=100)
    #: How long the account page keeps a notice (an identity linked or unlinked).
    notice_days: PositiveFloat = 90.0


class RateLimitSettings(BaseModel):
    """A token bucket per identity: ``burst`` messages at once, refilled at
    ``per_minute``."""

    model_config = _Frozen

    per_minute: float = Field(default=20.0, gt=0)
    burst: int = Field(default=8, ge=1)
    #: Platforms not limited: the console is the operator at their own terminal.
    exempt_platforms: IdList = ("console",)


class AccessSettings(BaseModel):
    """Optional allow and block lists. Users are ``platform:user_id``, chats are
    ``platform:chat_id``; an empty allow list allows everyone."""

    model_config = _Frozen

    allow_users: IdList = ()
    block_users: IdList = ()
    allow_chats: IdList = ()
    block_chats: IdList = ()
    linked_only: bool = False


class CoreSettings(BaseSettings):
    """What the core can be told. The application's settings (:mod:`bot.app_settings`,
    wiring) add each platform adapter's own section to these. Names are a contract: see
    the README."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    store: StoreSettings = StoreSettings()
    personas_dir: FilePath = Path("./personas")
    default_persona: str | None = None
    #: Seconds between two looks for added, edited or removed cards (0: never reload).
    personas_reload_interval: float = Field(default=2.0, ge=0)
    #: The backend of every card that names none (SillyTavern cards never do).
    default_backend: str = Field(default="offline", min_length=1, pattern=r"^[a-z0-9_-]+$")
    prompt: PromptSettings = PromptSettings()
    web: WebSettings = WebSettings()
    openai: OpenAISettings = OpenAISettings()
    characterai: CharacterAISettings = CharacterAISettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    speech: SpeechSettings = SpeechSettings()
    media: MediaSettings = MediaSettings()
    offline: OfflineSettings = OfflineSettings()
    engine: EngineSettings = EngineSettings()
    linking: LinkingSettings = LinkingSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    access: AccessSettings = AccessSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init_settings carries what load_as passes: the environment it was given
        # and the TOML file, already merged in the right order.
        return (init_settings,)


class _ShallowJson(EnvSettingsSource):
    """A JSON value (``PERSONABRIDGE_WEB='{"port": 80}'``) nested thousands deep is a bad
    value like any other (pydantic-settings then names the setting), not a crash."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


class _DotEnvSource(_ShallowJson, DotEnvSettingsSource):
    pass


class _MappingEnvSource(_ShallowJson):
    """Reads a given mapping instead of ``os.environ``, so callers (and tests) inject it."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc if isinstance(part, str))


def load_as(
    model: type[S], environ: Mapping[str, str] | None = None, *, use_dotenv: bool = True
) -> S:
    """Load ``model`` (the application's settings, or the core's alone) from ``environ``
    (default: the process environment), ``.env`` and the TOML file named by
    ``PERSONABRIDGE_CONFIG``. Raises ConfigError on bad values or unknown names."""
    environ = os.environ if environ is None else environ
    config_file = Path(environ.get(ENV_PREFIX + "CONFIG", DEFAULT_CONFIG_FILE))
    explicit_file = ENV_PREFIX + "CONFIG" in environ
    if explicit_file and not config_file.is_file():
        raise ConfigError(f"{ENV_PREFIX}CONFIG: no such file: {config_file}")
    check_environment_names(environ, ENV_PREFIX, model)
    try:
        layers: list[dict[str, Any]] = []
        if config_file.is_file():
            layers.append(_toml_layer(config_file, model))
        if use_dotenv:
            layers.append(_dotenv_layer(environ, model))
        layers.append(_MappingEnvSource(model, environ)())
        values: dict[str, Any] = {}
        for layer in layers:
            values = _deep_merge(values, layer)
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{_env_name(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise ConfigError(f"invalid setting: {problems}") from exc
    except SettingsError as exc:  # e.g. PERSONABRIDGE_WEB='{not json'
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}: " if field else ""
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise ConfigError(f"cannot read settings: {name}{exc}{cause}") from exc
    except (ValueError, OSError) as exc:  # e.g. an unreadable .env file
        raise ConfigError(f"cannot read settings: {exc}") from exc


def _toml_layer(config_file: Path, model: type[BaseSettings]) -> dict[str, Any]:
    """The file's settings, checked on their own, so that a mistake in the file is
    named as it is written there (``personabridge.toml: [web] port: ...``)."""
    try:
        values = TomlConfigSettingsSource(model, toml_file=config_file)()
    except (ValueError, OSError) as exc:  # unreadable or invalid TOML (or not UTF-8)
        raise ConfigError(f"cannot read settings from {config_file}: {exc}") from exc
    except RecursionError as exc:  # arrays or tables nested thousands deep
        raise ConfigError(f"cannot read settings from {config_file}: nested too deeply") from exc
    check_file_names(values, model, str(config_file))
    try:
        model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{file_location(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{config_file}: {problems}") from exc
    return values


def _dotenv_layer(environ: Mapping[str, str], model: type[BaseSettings]) -> dict[str, Any]:
    env_file = environ.get(ENV_PREFIX + "ENV_FILE", ".env")
    source = _DotEnvSource(model, env_file=env_file)
    check_environment_names(source.env_vars, ENV_PREFIX, model, where=f"{env_file}: ")
    return source()
