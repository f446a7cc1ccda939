"""End-to-end CPU per platform message, on the production path with an OpenAI-compatible
model: platform library -> engine -> SQLite -> openai SDK -> model streaming -> paced
edits -> platform.

Three processes on loopback, so that the bot's CPU is the bot's alone:

  * the bot: ``personabridge run`` as deployed (``python -m bot.cli run``), configured
    through its ``PERSONABRIDGE_*`` settings: SQLite in a temp folder, the shipped
    Professor Ada card on the ``openai`` backend, one platform adapter (the real
    python-telegram-bot in polling mode, or the real discord.py on the gateway), every
    other setting at its default (the web page too), except the per-identity rate limit,
    which would refuse a benchmark;
  * the model (:mod:`bench.fake_model`): replies of 50 words, sent at once
    (``instant``) or one word every 20 ms (``streaming``);
  * the platform (:mod:`bench.platform_fakes`): the tests' fake Bot API or fake Discord,
    and the people: each sends a message in their private chat (a Discord DM), waits
    for the complete reply, then sends the next; many people at once.

The figure is the bot process's CPU time (user + system, all its threads, read from
``/proc/<pid>/stat``) from the first measured message to the last complete reply,
divided by the messages. A warm-up round of other people comes first (imports, pools,
SQLite's first pages).

Run: ``.venv/bin/python bench/e2e.py`` (``--quick`` for a smoke run; ``--json PATH``
also writes the headline figures for ``bench/all.py``; ``--profile DIR`` runs the bot
under cProfile, one ``.prof`` file per run with its top printed: its CPU figures are
then inflated by the profiler; ``--only telegram-streaming`` and the like runs one).
Linux only (``/proc``). Not a test; every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fake_model, platform_fakes  # noqa: E402
from bench.report import Figure, add_json_option, emit  # noqa: E402

GOAL_MS = {"instant": 5.0, "streaming": 7.0}
MODELS = {"instant": "fake-instant", "streaming": "fake-20ms"}
PLATFORMS = ("telegram", "discord")
#: Seconds a bot may take to start, and to stop after SIGTERM.
START_LIMIT = 60.0
STOP_LIMIT = 30.0
#: Seconds one load may take (each reply has 120 s in the platform's process).
LOAD_LIMIT = 600.0


@dataclass(frozen=True)
class Result:
    platform: str
    model: str
    messages: int
    seconds: float
    cpu: float

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.messages


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def persona_dir(folder: Path) -> Path:
    """The shipped default persona, on the openai backend."""
    personas = folder / "personas"
    personas.mkdir()
    card = (ROOT / "personas" / "ada.toml").read_text(encoding="utf-8")
    assert 'backend = "offline"' in card
    (personas / "ada.toml").write_text(card.replace('backend = "offline"', 'backend = "openai"'))
    return personas


def bot_env(
    folder: Path, model_url: str, model: str, platform_env: dict[str, str]
) -> dict[str, str]:
    (folder / "none.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONABRIDGE_")}
    return env | {
        "PERSONABRIDGE_CONFIG": str(folder / "none.toml"),
        "PERSONABRIDGE_ENV_FILE": str(folder / "none.env"),
        "PERSONABRIDGE_STORE__SQLITE_PATH": str(folder / "bench.db"),
        "PERSONABRIDGE_PERSONAS_DIR": str(persona_dir(folder)),
        "PERSONABRIDGE_DEFAULT_PERSONA": "ada",
        "PERSONABRIDGE_WEB__PORT": "0",
        "PERSONABRIDGE_OPENAI__BASE_URL": model_url,
        "PERSONABRIDGE_OPENAI__MODEL": model,
        "PERSONABRIDGE_RATE_LIMIT__PER_MINUTE": "1000000000",
        "PERSONABRIDGE_RATE_LIMIT__BURST": "1000000000",
        "PERSONABRIDGE_LOG_LEVEL": "WARNING",
        **platform_env,
    }


def run_one(
    ctx: multiprocessing.context.SpawnContext,
    model_url: str,
    platform: str,
    model: str,
    users: int,
    per_user: int,
    profile: Path | None,
) -> Result:
    parent, child = ctx.Pipe()
    fakes = ctx.Process(target=platform_fakes.serve, args=(platform, child), daemon=True)
    fakes.start()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        folder = Path(tmp)
        env = bot_env(folder, model_url, MODELS[model], parent.recv())
        command = [sys.executable]
        if profile is not None:
            command += ["-m", "cProfile", "-o", str(profile / f"{platform}-{model}.prof")]
        command += ["-m", "bot.cli", "run"]
        log = (folder / "bot.log").open("wb")
        bot = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            parent.send(("connected",))
            if not parent.poll(START_LIMIT):
                raise SystemExit(f"the bot did not connect within {START_LIMIT:g} s")
            parent.recv()
            parent.send(("load", 900_000, 10, 1))  # warm-up, other people
            answer(parent, bot)
            before = cpu_seconds(bot.pid)
            parent.send(("load", 200_000, users, per_user))  # never the bot's own id
            replies, seconds = answer(parent, bot)
            cpu = cpu_seconds(bot.pid) - before
        except BaseException:
            log.close()
            print((folder / "bot.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
            log.close()
            parent.send(("stop",))
            fakes.join(10)
    assert replies == users * per_user, (replies, users * per_user)
    return Result(platform, model, replies, seconds, cpu)


def answer(conn: Connection, bot: subprocess.Popen[bytes]) -> tuple[int, float]:
    """What the platform's process says of a load: replies and seconds, or its failure."""
    deadline = time.monotonic() + LOAD_LIMIT
    while not conn.poll(1.0):
        if bot.poll() is not None:
            raise SystemExit(f"the bot exited (status {bot.returncode}) during the load")
        if time.monotonic() > deadline:
            raise SystemExit(f"the load took more than {LOAD_LIMIT:g} s")
    said = conn.recv()
    if isinstance(said, str):
        raise SystemExit(said)
    return said


def print_profile(path: Path, top: int = 25) -> None:
    print(f"\n### profile of the bot: {path.name} (cProfile, sorted by own time)\n")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)


def main(quick: bool, only: list[str], profile: Path | None) -> list[Figure]:
    users, per_user = (20, 3) if quick else (100, 10)
    ctx = multiprocessing.get_context("spawn")
    model_parent, model_child = ctx.Pipe()
    model_process = ctx.Process(target=fake_model.serve, args=(model_child,), daemon=True)
    model_process.start()
    model_url = model_parent.recv()
    results: list[Result] = []
    try:
        for platform in PLATFORMS:
            for model in MODELS:
                if only and f"{platform}-{model}" not in only:
                    continue
                result = run_one(ctx, model_url, platform, model, users, per_user, profile)
                print(
                    f"{platform:<9} {model:<10} {result.messages:>5} messages in"
                    f" {result.seconds:5.1f} s: {result.cpu_ms:6.2f} ms bot CPU per message"
                    f" (goal <= {GOAL_MS[model]:g} ms)",
                    flush=True,
                )
                results.append(result)
    finally:
        model_parent.send("stop")
        model_process.join(10)
    print(
        f"\nbot process CPU per private-chat message, {users} people x {per_user} messages,"
        f" replies of {fake_model.WORDS} words; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'platform':<10} {'model':<10} {'CPU ms/msg':>11} {'goal':>8} {'ratio':>7}")
    for r in results:
        goal = GOAL_MS[r.model]
        ratio = goal / r.cpu_ms
        print(f"{r.platform:<10} {r.model:<10} {r.cpu_ms:>11.2f} {goal:>8.1f} {ratio:>7.2f}")
    if profile is not None:
        for r in results:
            print_profile(profile / f"{r.platform}-{r.model}.prof")
    libraries = {"telegram": "python-telegram-bot polling", "discord": "discord.py gateway"}
    kinds = {"instant": "instant reply", "streaming": "a word every 20 ms"}
    return [
        Figure(
            "e2e",
            f"bot CPU per {r.platform} private message, OpenAI-compatible model, {kinds[r.model]}",
            r.cpu_ms,
            "ms",
            GOAL_MS[r.model],
            "lower",
            note=f"personabridge run (SQLite, openai SDK, real {libraries[r.platform]}),"
            " the tests' fake platform server and a fake model in other processes;"
            f" {users} people x {per_user} messages, {fake_model.WORDS}-word replies;"
            " CPU of the bot process from /proc",
        )
        for r in results
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--only", action="append", default=[], help="one run, such as telegram-streaming"
    )
    parser.add_argument("--profile", type=Path, help="run the bot under cProfile, files here")
    add_json_option(parser)
    arguments = parser.parse_args()
    if arguments.profile is not None:
        arguments.profile.mkdir(parents=True, exist_ok=True)
        arguments.profile = arguments.profile.resolve()
    started = time.perf_counter()
    figures = main(arguments.quick, arguments.only, arguments.profile)
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    emit(figures, arguments.json)
