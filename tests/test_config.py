"""Settings: the names of the configuration contract, precedence, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.app_settings import load_settings
from bot.errors import ConfigError


def test_defaults() -> None:
    s = load_settings({}, use_dotenv=False)
    assert s.store.kind == "sqlite"
    assert s.store.sqlite_path == Path("./data/personabridge.db")
    assert s.store.dynamodb_table == "personabridge"
    assert s.personas_dir == Path("./personas")
    assert s.default_persona is None
    assert (s.web.host, s.web.port, s.web.secure_cookies) == ("127.0.0.1", 8080, False)
    assert s.web.base_url == "http://127.0.0.1:8080"
    assert s.telegram.token is None and s.telegram.mode == "polling"
    assert s.discord.token is None and s.openai.api_key is None
    assert s.characterai.token is None


def test_every_contract_name_is_read() -> None:
    env = {
        "PERSONABRIDGE_STORE__KIND": "dynamodb",
        "PERSONABRIDGE_STORE__SQLITE_PATH": "/tmp/x.db",
        "PERSONABRIDGE_STORE__DYNAMODB_TABLE": "t",
        "PERSONABRIDGE_STORE__DYNAMODB_ENDPOINT_URL": "http://127.0.0.1:5000",
        "PERSONABRIDGE_STORE__DYNAMODB_REGION": "eu-west-1",
        "PERSONABRIDGE_PERSONAS_DIR": "/srv/personas",
        "PERSONABRIDGE_DEFAULT_PERSONA": "morrow",
        "PERSONABRIDGE_WEB__HOST": "0.0.0.0",
        "PERSONABRIDGE_WEB__PORT": "9000",
        "PERSONABRIDGE_WEB__PUBLIC_URL": "https://bot.example.org/",
        "PERSONABRIDGE_WEB__SECURE_COOKIES": "true",
        "PERSONABRIDGE_TELEGRAM__TOKEN": "123:abc",
        "PERSONABRIDGE_TELEGRAM__MODE": "webhook",
        "PERSONABRIDGE_TELEGRAM__API_BASE_URL": "http://127.0.0.1:8081",
        "PERSONABRIDGE_TELEGRAM__WEBHOOK_SECRET": "s3cret",
        "PERSONABRIDGE_DISCORD__TOKEN": "dtoken",
        "PERSONABRIDGE_DISCORD__PUBLIC_KEY": "abcd",
        "PERSONABRIDGE_DISCORD__API_BASE_URL": "http://127.0.0.1:1/api/v10",
        "PERSONABRIDGE_DISCORD__GATEWAY_URL": "ws://127.0.0.1:1/gateway",
        "PERSONABRIDGE_OPENAI__BASE_URL": "http://127.0.0.1:11434/v1",
        "PERSONABRIDGE_OPENAI__API_KEY": "sk-test",
        "PERSONABRIDGE_OPENAI__MODEL": "llama3",
        "PERSONABRIDGE_CHARACTERAI__TOKEN": "cai",
    }
    s = load_settings(env, use_dotenv=False)
    assert s.store.kind == "dynamodb" and s.store.sqlite_path == Path("/tmp/x.db")
    assert (s.store.dynamodb_table, s.store.dynamodb_region) == ("t", "eu-west-1")
    assert s.store.dynamodb_endpoint_url == "http://127.0.0.1:5000"
    assert s.personas_dir == Path("/srv/personas") and s.default_persona == "morrow"
    assert (s.web.host, s.web.port, s.web.secure_cookies) == ("0.0.0.0", 9000, True)
    assert s.web.base_url == "https://bot.example.org"
    assert s.telegram.token is not None and s.telegram.token.get_secret_value() == "123:abc"
    assert s.telegram.mode == "webhook" and s.telegram.api_base_url == "http://127.0.0.1:8081"
    assert s.telegram.webhook_secret is not None
    assert s.discord.public_key == "abcd" and s.discord.gateway_url.startswith("ws://")
    assert s.discord.api_base_url == "http://127.0.0.1:1/api/v10"
    assert s.openai.model == "llama3" and s.openai.base_url.endswith("/v1")
    assert s.characterai.token is not None


def test_secrets_do_not_show_in_repr() -> None:
    s = load_settings({"PERSONABRIDGE_TELEGRAM__TOKEN": "123:abc"}, use_dotenv=False)
    assert "123:abc" not in repr(s) and "123:abc" not in str(s.telegram)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("PERSONABRIDGE_STORE__KIND", "mongo", id="store-kind"),
        pytest.param("PERSONABRIDGE_WEB__PORT", "eighty", id="port-not-int"),
        pytest.param("PERSONABRIDGE_WEB__PORT", "70000", id="port-range"),
        pytest.param("PERSONABRIDGE_TELEGRAM__MODE", "carrier-pigeon", id="telegram-mode"),
        pytest.param("PERSONABRIDGE_ENGINE__RETRIES", "-1", id="negative-retries"),
        pytest.param("PERSONABRIDGE_WEB__SECURE_COOKIES", "perhaps", id="not-a-bool"),
    ],
)
def test_invalid_value_names_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, use_dotenv=False)
    assert name in str(caught.value)


def test_toml_file_and_precedence(tmp_path: Path) -> None:
    config = tmp_path / "pb.toml"
    config.write_text(
        'default_persona = "morrow"\n[web]\nport = 9100\nhost = "0.0.0.0"\n'
        '[store]\nkind = "sqlite"\n'
    )
    env = {"PERSONABRIDGE_CONFIG": str(config), "PERSONABRIDGE_WEB__PORT": "9200"}
    s = load_settings(env, use_dotenv=False)
    assert s.default_persona == "morrow"
    assert s.web.host == "0.0.0.0"
    assert s.web.port == 9200  # the environment wins over the file


def test_dotenv_is_read_below_the_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PERSONABRIDGE_WEB__PORT=9300\nPERSONABRIDGE_DEFAULT_PERSONA=ada\n")
    env = {"PERSONABRIDGE_ENV_FILE": str(dotenv), "PERSONABRIDGE_DEFAULT_PERSONA": "morrow"}
    s = load_settings(env)
    assert s.web.port == 9300 and s.default_persona == "morrow"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("this is = = not toml", id="bad-syntax"),
        pytest.param("[web]\nport = 'x'\n", id="bad-value"),
    ],
)
def test_bad_toml_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    config = tmp_path / "pb.toml"
    config.write_text(content)
    with pytest.raises(ConfigError):
        load_settings({"PERSONABRIDGE_CONFIG": str(config)}, use_dotenv=False)


def test_missing_named_config_file() -> None:
    with pytest.raises(ConfigError, match="PERSONABRIDGE_CONFIG"):
        load_settings({"PERSONABRIDGE_CONFIG": "/nonexistent/pb.toml"}, use_dotenv=False)


def test_lists_are_comma_separated() -> None:
    s = load_settings(
        {"PERSONABRIDGE_ACCESS__ALLOW_USERS": "telegram:1, discord:2,"}, use_dotenv=False
    )
    assert s.access.allow_users == ("telegram:1", "discord:2")


# -- names that are no setting are refused, named where they were written -----------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "[wbe]\nport = 9000\n", "[wbe]: unknown section (did you mean 'web'?)", id="section"
        ),
        pytest.param('colour = "blue"\n', "colour: unknown key", id="top-level-key"),
        pytest.param(
            "[web]\nprot = 9000\n", "[web] prot: unknown key (did you mean 'port'?)", id="key"
        ),
        pytest.param(
            '[web]\nport = "x"\n', "[web] port: Input should be a valid integer", id="type"
        ),
        pytest.param('log_level = "LOUD"\n', "log_level: Input should be", id="top-level-type"),
    ],
)
def test_the_toml_file_refuses_unknown_names_naming_file_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "personabridge.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings({"PERSONABRIDGE_CONFIG": str(config)}, use_dotenv=False)
    assert str(caught.value).startswith(f"{config}: {message}")
    assert "PERSONABRIDGE_" not in str(caught.value), "the file's words, not the environment's"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "PERSONABRIDGE_WBE__PORT",
            "PERSONABRIDGE_WBE__PORT: unknown setting (did you mean PERSONABRIDGE_WEB__PORT?)",
            id="section",
        ),
        pytest.param(
            "PERSONABRIDGE_WEB__PROT",
            "PERSONABRIDGE_WEB__PROT: unknown setting (did you mean PERSONABRIDGE_WEB__PORT?)",
            id="key",
        ),
        pytest.param("PERSONABRIDGE_COLOUR", "PERSONABRIDGE_COLOUR: unknown setting", id="top"),
    ],
)
def test_unknown_environment_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: "1"}, use_dotenv=False)
    assert str(caught.value) == message


def test_unknown_names_in_the_dotenv_file_name_the_file(tmp_path: Path) -> None:
    dotenv = tmp_path / "settings.env"
    dotenv.write_text("PERSONABRIDGE_WEB__PORT=9000\nPERSONABRIDGE_WBE__HOST=x\nOTHER=1\n")
    with pytest.raises(ConfigError, match=r"settings\.env: PERSONABRIDGE_WBE__HOST: unknown"):
        load_settings({"PERSONABRIDGE_ENV_FILE": str(dotenv)})


def test_the_meta_names_and_other_programs_variables_are_not_settings_but_fine(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[web]\nport = 9001\n")
    env = {"PERSONABRIDGE_CONFIG": str(config), "PERSONABRIDGE_ENV_FILE": "none", "HOME": "/x"}
    assert load_settings(env).web.port == 9001


async def test_dynamodb_without_any_region_names_the_setting_and_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.store.dynamo import DynamoStore

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no region from the network
    with pytest.raises(ConfigError) as caught:
        async with DynamoStore("personabridge", endpoint_url="http://127.0.0.1:9", region=None):
            pass
    message = str(caught.value)
    assert message.startswith("PERSONABRIDGE_STORE__DYNAMODB_REGION: ")
    assert "set PERSONABRIDGE_STORE__DYNAMODB_REGION" in message and "AWS_REGION" in message


def test_urls_in_messages_never_carry_credentials() -> None:
    from bot.config import shown_url

    assert (
        shown_url("https://me:s3cret@llm.example.org:8443/v1") == "https://llm.example.org:8443/v1"
    )
    assert shown_url("http://[::1]:80/x") == "http://[::1]:80/x"
    assert "s3cret" not in shown_url("http://me:s3cret@[::1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("TELEGRAM__WEBHOOK_PATH", "telegram/hook", id="telegram-path"),
        pytest.param("TELEGRAM__GROUP_EDIT_INTERVAL", "-1", id="telegram-interval"),
        pytest.param("DISCORD__SHARD_IDS", "0,1", id="discord-ids-without-count"),
        pytest.param("DISCORD__FIRST_TYPO", "1", id="discord-unknown"),
    ],
)
def test_an_adapters_own_section_is_checked_like_the_core(name: str, value: str) -> None:
    """Each adapter declares its section beside its code; loading checks it at start,
    naming the setting, like every other."""
    with pytest.raises(ConfigError, match=f"PERSONABRIDGE_{name}"):
        load_settings({f"PERSONABRIDGE_{name}": value}, use_dotenv=False)


def test_loading_the_settings_imports_no_platform_library() -> None:
    """Every command loads the settings, adapters' sections included: that must not
    cost the import of discord.py, python-telegram-bot or aiohttp."""
    probe = (
        "import sys; from bot.app_settings import load_settings; "
        "load_settings({}, use_dotenv=False); "
        "print(sorted({'discord', 'telegram', 'aiohttp'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
