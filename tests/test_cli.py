"""The ``personabridge`` command, run as a user would run it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cards import png_text_chunks
from bot.linking import create_link_code
from bot.messages import ConversationKey, Identity, guest_owner
from bot.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PERSONABRIDGE_STORE__SQLITE_PATH": str(tmp_path / "data" / "pb.db"),
        "PERSONABRIDGE_PERSONAS_DIR": str(ROOT / "personas"),
        "PERSONABRIDGE_CONFIG": str(tmp_path / "none.toml"),
        "PERSONABRIDGE_ENV_FILE": str(tmp_path / "none.env"),
    }


@pytest.fixture(autouse=True)
def _config_file(env: dict[str, str]) -> None:
    Path(env["PERSONABRIDGE_CONFIG"]).write_text("")


async def test_two_chat_runs_continue_one_history(env: dict[str, str]) -> None:
    first = run_cli("chat", "--as", "Tess", stdin="What is Docker?\n", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and "Traceback" not in first.stderr
    second = run_cli("chat", "--as", "Tess", stdin="hello again\n/whoami\n", env=env)
    assert second.returncode == 0, second.stderr
    assert "Tess on console" in second.stdout

    async with SqliteStore(env["PERSONABRIDGE_STORE__SQLITE_PATH"]) as store:
        key = ConversationKey(guest_owner(Identity("console", "tess")), "ada", "direct")
        window = await store.load_window(key, 50)
    assert [(t.role, t.text) for t in window.turns][0::2] == [
        ("user", "What is Docker?"),
        ("user", "hello again"),
    ]
    assert [t.role for t in window.turns] == ["user", "assistant", "user", "assistant"]
    assert window.turns[1].text == first.stdout.strip()


async def test_the_terminal_links_by_text_after_asking(env: dict[str, str]) -> None:
    """Issue 14 item 1 on the console: ``/link CODE`` names the account and asks;
    ``/link confirm`` links."""
    async with SqliteStore(env["PERSONABRIDGE_STORE__SQLITE_PATH"]) as store:
        account = await store.create_account("tess", "unused", 1.0)
        code = await create_link_code(store, account.id, time.time())
    asked = run_cli("chat", "--as", "Tess", stdin=f"/link {code}\n", env=env)
    assert asked.returncode == 0, asked.stderr
    assert '"tess"' in asked.stdout and "/link confirm" in asked.stdout
    async with SqliteStore(env["PERSONABRIDGE_STORE__SQLITE_PATH"]) as store:
        assert await store.get_identity(Identity("console", "tess")) is None
    done = run_cli("chat", "--as", "Tess", stdin="/link confirm\n", env=env)
    assert "Linked: this terminal account now speaks for tess." in done.stdout, done.stdout
    async with SqliteStore(env["PERSONABRIDGE_STORE__SQLITE_PATH"]) as store:
        link = await store.get_identity(Identity("console", "tess"))
    assert link is not None and link.account_id == account.id


def test_chat_with_a_chosen_persona(env: dict[str, str]) -> None:
    personas = run_cli("personas", "list", env=env)
    ids = [line.split("\t")[0] for line in personas.stdout.splitlines()]
    assert len(ids) >= 2
    other = ids[1]
    result = run_cli("chat", "--persona", other, stdin="/whoami\n", env=env)
    assert result.returncode == 0 and f"({other})" in result.stdout


def test_chat_with_an_unknown_persona_is_a_clear_error(env: dict[str, str]) -> None:
    result = run_cli("chat", "--persona", "nobody", env=env)
    assert result.returncode == 2
    assert "no persona 'nobody'" in result.stderr and "Traceback" not in result.stderr


def test_personas_show(env: dict[str, str]) -> None:
    result = run_cli("personas", "show", "ada", env=env)
    assert result.returncode == 0 and "name: Professor Ada" in result.stdout
    missing = run_cli("personas", "show", "nobody", env=env)
    assert missing.returncode == 2 and "nobody" in missing.stderr


CARDS = ROOT / "tests" / "personas" / "cards"


def test_personas_import_keeps_the_card_as_it_came(env: dict[str, str], tmp_path: Path) -> None:
    card = CARDS / "lighthouse_v3.json"
    target_dir = tmp_path / "personas"
    shutil.copytree(ROOT / "personas", target_dir)
    env = {**env, "PERSONABRIDGE_PERSONAS_DIR": str(target_dir)}
    result = run_cli("personas", "import", str(card), "--backend", "offline", env=env)
    assert result.returncode == 0, result.stderr
    stored = target_dir / "captain-iris-vale.json"
    assert stored.read_bytes() == card.read_bytes()  # not converted
    sidecar = (target_dir / "captain-iris-vale.personabridge.toml").read_text()
    assert 'id = "captain-iris-vale"' in sidecar and 'backend = "offline"' in sidecar
    listed = run_cli("personas", "list", env=env).stdout
    assert "captain-iris-vale\tCaptain Iris Vale\toffline" in listed  # the name, not the nickname
    again = run_cli("personas", "import", str(card), env=env)
    assert again.returncode == 2 and "--force" in again.stderr
    clash = run_cli("personas", "import", str(card), "--id", "ada", "--force", env=env)
    assert clash.returncode == 2 and "duplicate persona id 'ada'" in clash.stderr
    assert not (target_dir / "ada.json").exists()  # what would not load is taken back


def test_personas_export_is_a_v3_card_that_imports_back(
    env: dict[str, str], tmp_path: Path
) -> None:
    target_dir = tmp_path / "personas"
    target_dir.mkdir()
    shutil.copy(CARDS / "lighthouse_v3.json", target_dir / "iris.json")
    env = {**env, "PERSONABRIDGE_PERSONAS_DIR": str(target_dir)}
    out = tmp_path / "out"
    out.mkdir()
    as_json = run_cli(
        "personas", "export", "captain-iris-vale", "-o", "iris.json", env=env, cwd=out
    )
    assert as_json.returncode == 0, as_json.stderr
    original = json.loads((CARDS / "lighthouse_v3.json").read_text())
    assert json.loads((out / "iris.json").read_text()) == original
    as_png = run_cli("personas", "export", "captain-iris-vale", "--format", "png", env=env, cwd=out)
    assert as_png.returncode == 0, as_png.stderr
    png = (out / "captain-iris-vale.png").read_bytes()
    chunks = png_text_chunks(png, "png")
    assert json.loads(base64.b64decode(chunks["ccv3"])) == original
    assert json.loads(base64.b64decode(chunks["chara"]))["spec"] == "chara_card_v2"
    again = run_cli("personas", "export", "captain-iris-vale", "-o", "iris.json", env=env, cwd=out)
    assert again.returncode == 2 and "--force" in again.stderr


def test_personas_show_every_field(env: dict[str, str], tmp_path: Path) -> None:
    target_dir = tmp_path / "personas"
    target_dir.mkdir()
    shutil.copy(CARDS / "lighthouse_v3.json", target_dir / "iris.json")
    env = {**env, "PERSONABRIDGE_PERSONAS_DIR": str(target_dir)}
    shown = run_cli("personas", "show", "captain-iris-vale", env=env).stdout
    for line in (
        "name: Captain Iris Vale",
        "nickname ({{char}}): Iris",
        "system prompt: {{original}} You are {{char}}, never an AI.",
        "post-history instructions:",
        "alternate greeting 1: The storm is coming, {{user}}.",
        "group-only greeting 1: Hello, everyone. Mind the lamp.",
        "creator notes (fr): Meilleur avec un modèle lent.",
        "character's note: at depth 2, as system: Iris speaks in short sentences.",
        "5 entries (4 enabled)",
        "#1 lamp | keys: lamp, lantern | secondary: light, night | selective | order 100",
        "#4 always | keys: (none) | constant | order 1",
        "decorators: @@depth 0, @@role assistant",
        "3 example conversation(s)",
        "source:",
    ):
        assert line in shown, line


def test_bad_setting_fails_at_start_naming_it(env: dict[str, str]) -> None:
    result = run_cli("chat", stdin="hi\n", env={**env, "PERSONABRIDGE_STORE__KIND": "mongo"})
    assert result.returncode == 2
    assert "PERSONABRIDGE_STORE__KIND" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--help"], id="top"),
        pytest.param(["run", "--help"], id="run"),
        pytest.param(["chat", "--help"], id="chat"),
        pytest.param(["personas", "--help"], id="personas"),
        pytest.param(["personas", "import", "--help"], id="personas-import"),
        pytest.param(["personas", "export", "--help"], id="personas-export"),
    ],
)
def test_help_everywhere(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 0 and "usage:" in result.stdout


# -- the web server cannot listen: one line naming the setting, exit 2 -------------------------


def test_a_port_in_use_is_one_line_naming_the_setting(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", env={**env, "PERSONABRIDGE_WEB__PORT": str(port)})
    assert result.returncode == 2
    assert result.stderr == f"personabridge: PERSONABRIDGE_WEB__PORT: {port} is already in use\n"


def test_a_host_that_is_not_this_machines_names_the_setting(env: dict[str, str]) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine, and nothing is sent to it
    result = run_cli("run", env={**env, "PERSONABRIDGE_WEB__HOST": "192.0.2.1"})
    assert result.returncode == 2
    assert result.stderr.startswith("personabridge: PERSONABRIDGE_WEB__HOST: '192.0.2.1'")
    assert len(result.stderr.splitlines()) == 1


# -- the first hour: default persona, import, piped output, version --------------------------


def test_an_unknown_default_persona_names_the_setting(env: dict[str, str]) -> None:
    result = run_cli("personas", "list", env={**env, "PERSONABRIDGE_DEFAULT_PERSONA": "bob"})
    assert result.returncode == 2
    assert result.stderr.startswith(
        "personabridge: PERSONABRIDGE_DEFAULT_PERSONA: no persona 'bob'"
    )
    assert "ada" in result.stderr and "Traceback" not in result.stderr


def test_importing_a_card_that_sorts_first_keeps_the_default(
    env: dict[str, str], tmp_path: Path
) -> None:
    import json
    import shutil

    target_dir = tmp_path / "personas"
    shutil.copytree(ROOT / "personas", target_dir)
    env = {**env, "PERSONABRIDGE_PERSONAS_DIR": str(target_dir)}
    card = tmp_path / "aaron.json"
    card.write_text(json.dumps({"name": "Aaron", "description": "First by name."}))  # V1
    result = run_cli("personas", "import", str(card), env=env)
    assert result.returncode == 0, result.stderr
    assert "The default persona is still ada" in result.stdout
    assert "/persona aaron" in result.stdout
    listed = run_cli("personas", "list", env=env)
    rows = {line.split("\t")[0]: line for line in listed.stdout.splitlines()}
    assert "(default)" in rows["ada"] and "(default)" not in rows["aaron"]
    assert "default persona: ada" in listed.stderr
    chat = run_cli("chat", "--as", "Kim", stdin="/whoami\n", env=env)
    assert "(ada)" in chat.stdout


def test_piped_replies_are_separated_by_a_blank_line(env: dict[str, str]) -> None:
    result = run_cli("chat", "--as", "Pia", stdin="/help\n/personas\n", env=env)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n\n")
    assert first.startswith("You are talking to") and "/forget" in first
    assert "Captain Morrow" in second


def test_chat_json_prints_one_object_per_reply(env: dict[str, str]) -> None:
    import json

    result = run_cli("chat", "--json", "--as", "Jo", stdin="/whoami\nWhat is Docker?\n", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    whoami, chat = (json.loads(line) for line in lines)
    assert whoami["message"] == "/whoami" and whoami["kind"] == "command"
    assert chat["message"] == "What is Docker?" and chat["kind"] == "chat"
    assert chat["persona"] == "Professor Ada" and chat["reply"]


def test_version(env: dict[str, str]) -> None:
    result = run_cli("--version", env=env)
    assert result.returncode == 0 and result.stdout.startswith("personabridge ")


def test_import_help_names_every_card_version(env: dict[str, str]) -> None:
    result = run_cli("personas", "import", "--help", env=env)
    assert result.returncode == 0 and "V1, V2 or V3" in " ".join(result.stdout.split())


async def test_chat_attach_sends_a_local_file(env: dict[str, str], tmp_path: Path) -> None:
    notes = tmp_path / "my notes.txt"
    notes.write_text("What is Docker?")
    stdin = f'/attach "{notes}" please read\n/attach {tmp_path / "missing.png"}\n'
    result = run_cli("chat", "--as", "Tess", stdin=stdin, env=env)
    assert result.returncode == 0, result.stderr
    assert f"No such file: {tmp_path / 'missing.png'}" in result.stdout

    async with SqliteStore(env["PERSONABRIDGE_STORE__SQLITE_PATH"]) as store:
        key = ConversationKey(guest_owner(Identity("console", "tess")), "ada", "direct")
        (asked, answered) = (await store.load_window(key, 50)).turns
    assert asked.text == "please read"
    assert [(a.filename, a.text) for a in asked.attachments] == [
        ("my notes.txt", "What is Docker?")
    ]
    assert answered.role == "assistant"
