"""Fuzzing the settings (hypothesis): every ``PERSONABRIDGE_*`` name the settings define,
and TOML config files, with hostile values.

Whatever the values: ``load_settings`` gives valid Settings or a ConfigError that names
the setting (``PERSONABRIDGE_...``) or the file; never a raw pydantic ValidationError or
another exception; never a secret's value in the message; and valid Settings hold no
NaN, no infinity and no URL without a host.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from bot.app_settings import Settings, load_settings
from bot.config import ENV_PREFIX
from bot.errors import ConfigError

FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
#: Secret values carry this mark, so the test can see one leaking into a message.
MARK = "sekret"
_NAMED = re.compile(ENV_PREFIX + r"[A-Z0-9_]+")


def setting_names(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> Iterator[str]:
    """The environment name of every setting, read off the models (so that a setting
    added later is fuzzed too)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield prefix + name.upper()  # the whole section as JSON
            yield from setting_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield prefix + name.upper()


def secret_names(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from secret_names(annotation, f"{prefix}{name.upper()}__")
        elif "SecretStr" in repr(annotation):
            yield prefix + name.upper()


NAMES = sorted(set(setting_names()))
SECRETS = sorted(secret_names())
SECTIONS = sorted(
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
)


def plausible_values(model: BaseModel, prefix: str = ENV_PREFIX) -> Iterator[tuple[str, str]]:
    """``(name, value)``: each setting's default as the environment spells it, so that
    many examples are valid but for the values the fuzzer made hostile."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from plausible_values(value, f"{prefix}{name.upper()}__")
        elif isinstance(value, bool):
            yield prefix + name.upper(), str(value).lower()
        elif isinstance(value, tuple):
            yield prefix + name.upper(), ",".join(map(str, value))
        elif value is not None:
            yield prefix + name.upper(), str(value)


PLAUSIBLE = dict(plausible_values(Settings()))


def test_the_fuzzers_know_the_contract_names() -> None:
    """The names the README promises are among those fuzzed, and the secrets are found."""
    for name in ("STORE__KIND", "WEB__PORT", "TELEGRAM__TOKEN", "OPENAI__API_KEY"):
        assert ENV_PREFIX + name in NAMES
    assert ENV_PREFIX + "TELEGRAM__TOKEN" in SECRETS
    assert ENV_PREFIX + "CHARACTERAI__TOKEN" in SECRETS
    assert ENV_PREFIX + "WEB__PORT" not in SECRETS


# -- hostile values ---------------------------------------------------------------------

NUMBERS = [
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "-0",
    "1e309",
    "1e-309",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "1_000",
    " 8 ",
    "9" * 5000,
    "1.5",
    "2.0000001",
    "1e5",
]
WORDS = [
    "",
    " ",
    "true",
    "false",
    "yes",
    "no",
    "maybe",
    "null",
    "None",
    "sqlite",
    "SQLITE",
    "dynamodb",
    "polling",
    "webhook",
    "debug",
    "DEBUG",
    "console,web",
    ",,,",
    "a, b ,c",
]
URLS = [
    "http://127.0.0.1:8080",
    "https://bot.example.org/",
    "ws://127.0.0.1:1/gateway",
    "wss://gateway.discord.gg",
    "127.0.0.1:8080",
    "http://",
    "http://[::1",
    "//host/x",
    "javascript:alert(1)",
    "ftp://host",
    "http://host name/",
    "https://u:p@host/",
    "http://\x00host",
    "file:///etc/passwd",
]
JSONS = [
    '{"port": 9000}',
    '{"port": "x"}',
    '{"bogus": 1}',
    "[1, 2]",
    '"str"',
    "5",
    "{",
    "{" * 3000,
    "[" * 100_000,
    '{"token": "' + MARK + '-json"}',
    "[1,2",
    "null",
]
hostile_values = st.one_of(
    st.sampled_from(NUMBERS + WORDS + URLS + JSONS),
    st.text(max_size=30),
    st.text(st.characters(categories=["Cs", "Cc", "Zs"]), max_size=5),
    st.floats().map(repr),
    st.integers().map(str),
)
secret_values = st.one_of(hostile_values, st.text(max_size=20)).map(lambda text: MARK + text)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    environ = {}
    for name in names:
        if name in SECRETS:
            value = draw(secret_values)
        elif name in PLAUSIBLE and draw(st.booleans()):
            value = PLAUSIBLE[name]
        else:
            value = draw(hostile_values)
        environ[name.lower() if draw(st.integers(0, 9)) == 0 else name] = value
    if draw(st.integers(0, 4)) == 0:  # a whole section as JSON, with a secret inside
        section = draw(st.sampled_from(SECTIONS))
        body = {draw(st.sampled_from(["token", "api_key", "port", "mode"])): MARK + "-in-json"}
        body.update(draw(st.dictionaries(st.text(max_size=8), hostile_values, max_size=2)))
        environ[f"{ENV_PREFIX}{section.upper()}"] = json.dumps(body)
    return environ


# -- what every outcome must be ---------------------------------------------------------


def assert_clear_error(error: ConfigError, given: set[str]) -> None:
    """The message names a setting that was given (or its section, or a key inside the
    section given as JSON), and no secret."""
    message = str(error)
    assert MARK not in message, message
    named = set(_NAMED.findall(message))
    assert named, f"no setting named in: {message}"
    for name in named:
        assert any(_related(name, other) for other in given), (name, given, message)


def _related(named: str, given: str) -> bool:
    given = given.upper()
    return named == given or named.startswith(given + "__") or given.startswith(named + "__")


def assert_sane(loaded: Settings) -> None:
    """Valid settings hold finite numbers, ports in range and URLs with a host."""
    for value in _leaves(loaded):
        if isinstance(value, float):
            assert math.isfinite(value), value
    assert 0 <= loaded.web.port <= 65535
    urls = [
        loaded.telegram.api_base_url,
        loaded.discord.api_base_url,
        loaded.discord.gateway_url,
        loaded.openai.base_url,
    ]
    urls += [u for u in (loaded.web.public_url, loaded.store.dynamodb_endpoint_url) if u]
    for url in urls:
        assert urlsplit(url).hostname, url
    assert MARK not in repr(loaded), "secrets never show in a repr (or a log line)"


def _leaves(model: BaseModel) -> Iterator[Any]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _leaves(value)
        elif isinstance(value, tuple):
            yield from value
        else:
            yield value


@settings(FUZZ, max_examples=300)
@given(environ=environments())
def test_environment_values_give_settings_or_a_clear_error(environ: dict[str, str]) -> None:
    try:
        loaded = load_settings(environ, use_dotenv=False)
    except ConfigError as error:
        event("ConfigError")
        assert_clear_error(error, set(environ))
    else:
        event("Settings")
        assert_sane(loaded)
        for name, value in environ.items():
            if name.upper() in SECRETS:
                section, key = name.upper().removeprefix(ENV_PREFIX).lower().split("__")
                secret = getattr(getattr(loaded, section), key)
                assert isinstance(secret, SecretStr) and secret.get_secret_value() == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("ENGINE__FIRST_DELTA_TIMEOUT", "inf", id="timeout-inf"),
        pytest.param("RATE_LIMIT__PER_MINUTE", "inf", id="rate-inf"),
        pytest.param("TELEGRAM__PRIVATE_EDIT_INTERVAL", "Infinity", id="interval-inf"),
        pytest.param("OFFLINE__WORD_DELAY", "nan", id="delay-nan"),
        pytest.param("WEB__PUBLIC_URL", "bot.example.org", id="url-no-scheme"),
        pytest.param("DISCORD__GATEWAY_URL", "https://gateway.discord.gg", id="gateway-not-ws"),
        pytest.param("OPENAI__BASE_URL", "http://[::1", id="url-broken"),
        pytest.param("STORE__SQLITE_PATH", "data/\x00.db", id="path-nul"),
    ],
)
def test_values_found_by_the_fuzzer_are_refused(name: str, value: str) -> None:
    """Were accepted before: an infinite timeout or rate, NaN, URLs without a host."""
    with pytest.raises(ConfigError, match=ENV_PREFIX + name):
        load_settings({ENV_PREFIX + name: value}, use_dotenv=False)


def test_bad_json_for_a_section_names_the_variable() -> None:
    for value in ('{"token": "' + MARK + '"', "[" * 100_000):
        with pytest.raises(ConfigError, match=f"{ENV_PREFIX}TELEGRAM:") as caught:
            load_settings({f"{ENV_PREFIX}TELEGRAM": value}, use_dotenv=False)
        assert MARK not in str(caught.value)


def test_an_empty_optional_url_means_unset() -> None:
    loaded = load_settings(
        {f"{ENV_PREFIX}WEB__PUBLIC_URL": "", f"{ENV_PREFIX}STORE__DYNAMODB_ENDPOINT_URL": ""},
        use_dotenv=False,
    )
    assert loaded.web.public_url is None and loaded.store.dynamodb_endpoint_url is None


# -- TOML config files ------------------------------------------------------------------

toml_values = st.recursive(
    st.one_of(hostile_values, st.integers(), st.floats(), st.booleans(), st.dates()),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=4,
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return value.isoformat()


@st.composite
def toml_files(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """A config file: sections and keys of the settings (and unknown ones), hostile values,
    secrets; sometimes damaged. Also the names of the settings it sets."""
    lines, named = [], set()
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=6, unique=True)):
        parts = name.removeprefix(ENV_PREFIX).lower().split("__")
        value = draw(secret_values if name in SECRETS else toml_values)
        key = ".".join(parts)  # dotted keys: web.port = 80
        lines.append(f"{key} = {_toml(value)}")
        named.add(name)
    if draw(st.booleans()):
        section = draw(st.sampled_from(SECTIONS))
        unknown = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True))
        lines.append(f"{section}.{unknown} = 1")
        named.add(f"{ENV_PREFIX}{section.upper()}__{unknown.upper()}")
    text = "\n".join(lines) + "\n"
    damage = draw(st.sampled_from(["none"] * 5 + ["cut", "garbage", "deep", "bytes"]))
    if damage == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "garbage":
        text += draw(st.text(max_size=20))
    elif damage == "deep":
        text += "web.x = " + "[" * 3000 + "]" * 3000 + "\n"
    data = text.encode("utf-8", "surrogatepass")
    if damage == "bytes":
        data = draw(st.binary(max_size=50))
    return data, named


@settings(FUZZ, max_examples=150)
@given(file=toml_files(), also_env=st.booleans())
def test_toml_config_files_give_settings_or_a_clear_error(
    tmp_path: Path, file: tuple[bytes, set[str]], also_env: bool
) -> None:
    data, named = file
    path = tmp_path / "personabridge.toml"
    path.write_bytes(data)
    environ = {f"{ENV_PREFIX}CONFIG": str(path)}
    if also_env:
        environ[f"{ENV_PREFIX}WEB__PORT"] = "8081"
    try:
        loaded = load_settings(environ, use_dotenv=False)
    except ConfigError as error:
        event("ConfigError: file" if str(path) in str(error) else "ConfigError: setting")
        message = str(error)
        assert MARK not in message, message
        if str(path) not in message:  # a bad file names itself; a bad value its setting
            assert_clear_error(error, named | set(environ))
    else:
        event("Settings")
        assert_sane(loaded)
        if also_env:
            assert loaded.web.port == 8081, "the environment wins over the file"
