"""The ``personabridge`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from bot import persona_cli
from bot.app import PersonaBridge, build_store, install_stop_signals
from bot.app_settings import Settings, load_settings
from bot.errors import PersonaBridgeError
from bot.workers import GATEWAY_WORKER, check_workers, stop_when_orphaned, supervise

log = logging.getLogger("personabridge")


def _version() -> str:
    try:
        return metadata.version("personabridge")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personabridge",
        description="Chat with a customised AI persona on Discord, Telegram, the web "
        "and the terminal. Settings come from PERSONABRIDGE_* environment variables, "
        ".env and personabridge.toml (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"personabridge {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "run",
        help="start every enabled adapter (web, Telegram, Discord)",
        description="Start every enabled adapter on one event loop and serve until "
        "interrupted (Ctrl-C or SIGTERM).",
    )

    worker = commands.add_parser(
        "worker",
        help="one of the WEB__WORKERS processes ('run' starts them)",
        description="Serve as worker INDEX of 'personabridge run' with WEB__WORKERS above 1: "
        "the web port is shared (SO_REUSEPORT); only worker 0 runs the gateway clients.",
    )
    worker.add_argument("index", type=int)

    chat = commands.add_parser(
        "chat",
        help="chat in the terminal",
        description="Chat with a persona in the terminal. The history is kept in the "
        "store and continues on the next run. With input from a pipe, each line is a "
        "message and each reply is printed, a blank line between replies.",
    )
    chat.add_argument("--persona", metavar="ID", help="talk to this persona (see 'personas list')")
    chat.add_argument(
        "--as", dest="user", metavar="NAME", help="your name (default: your login name)"
    )
    chat.add_argument(
        "--json",
        action="store_true",
        help="print each reply as one JSON object per line (message, reply, kind, persona), "
        "for scripts; without it, piped replies are separated by a blank line",
    )

    db = commands.add_parser(
        "db",
        help="create or check the DynamoDB table",
        description="Manage the DynamoDB table named by PERSONABRIDGE_STORE__DYNAMODB_TABLE "
        "(needs PERSONABRIDGE_STORE__KIND=dynamodb).",
    )
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_actions.add_parser(
        "create",
        help="create the table if needed (on-demand, TTL on), wait until active",
        description="Create the table (idempotent), wait until it is active, enable TTL.",
    )
    db_actions.add_parser(
        "check", help="check the table's keys, status and TTL", description="Check the table."
    )

    persona_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(
            level=logging.WARNING if args.command == "chat" else settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if args.command == "run" and settings.web.workers > 1:
            check_workers(settings.web.workers, settings.web.port)
            return asyncio.run(supervise(settings.web.workers))
        if args.command == "run":
            asyncio.run(_run(settings))
        elif args.command == "worker":
            asyncio.run(_run(settings, worker=args.index))
        elif args.command == "chat":
            return asyncio.run(_chat(settings, args.persona, args.user, args.json))
        elif args.command == "db":
            return asyncio.run(_db(settings, args.action))
        else:
            return persona_cli.run(settings, args)
    except PersonaBridgeError as exc:
        print(f"personabridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


async def _run(settings: Settings, *, worker: int | None = None) -> None:
    """Serve until stopped: as the one process, or as worker ``worker`` of several (see
    :mod:`bot.workers`)."""
    async with PersonaBridge(settings) as bridge:
        if worker is None:
            adapters = bridge.enabled_adapters()
        else:
            log.info("worker %d of %d (pid %d)", worker, settings.web.workers, os.getpid())
            adapters = bridge.enabled_adapters(gateways=worker == GATEWAY_WORKER, reuse_port=True)
        if not adapters:
            print(
                "personabridge: no adapter is enabled: the web page is off "
                "(PERSONABRIDGE_WEB__ENABLED=false) and no PERSONABRIDGE_TELEGRAM__TOKEN or "
                "PERSONABRIDGE_DISCORD__TOKEN is set. Try 'personabridge chat'.",
                file=sys.stderr,
            )
            return
        stop = asyncio.Event()
        install_stop_signals(stop)
        if worker is None:
            await bridge.serve(adapters, stop)
            return
        watching = asyncio.create_task(stop_when_orphaned(stop))
        try:
            await bridge.serve(adapters, stop)
        finally:
            watching.cancel()
            await asyncio.wait([watching])


async def _chat(
    settings: Settings, persona_id: str | None, user: str | None, json_lines: bool = False
) -> int:
    from adapters.console import ConsoleChat

    async with PersonaBridge(settings) as bridge:
        if persona_id and bridge.personas.find(persona_id) is None:
            known = ", ".join(p.id for p in bridge.personas)
            print(f"personabridge: no persona {persona_id!r} (known: {known})", file=sys.stderr)
            return 2
        chat = ConsoleChat(
            bridge.engine,
            user_name=user or getpass.getuser() or "you",
            stdin=sys.stdin,
            stdout=sys.stdout,
            interactive=sys.stdin.isatty(),
            json_lines=json_lines,
        )
        await chat.run(persona_id)
    return 0


async def _db(settings: Settings, action: str) -> int:
    if settings.store.kind != "dynamodb":
        print(
            "personabridge: 'db' manages the DynamoDB table; set "
            "PERSONABRIDGE_STORE__KIND=dynamodb (the SQLite file needs no setup)",
            file=sys.stderr,
        )
        return 2
    from bot.store.dynamo import DynamoStore, check_table, create_table

    store = build_store(settings)
    assert isinstance(store, DynamoStore)
    async with store:
        report = await (create_table(store) if action == "create" else check_table(store))
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
