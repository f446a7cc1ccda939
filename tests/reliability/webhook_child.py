"""A worker serving Telegram's webhook on a store, in a process of its own, for
``test_webhook_crash.py`` to kill with SIGKILL while the updates it acknowledged are
still being answered.

``python webhook_child.py BOT_API_URL sqlite DB`` (or ``... dynamodb ENDPOINT TABLE``)
prints ``READY <webhook url>`` once it takes updates, then serves until killed (it exits
by itself, status 3, after ``LIFETIME`` seconds). Its persona answers slowly, so at the
kill most acknowledged updates are unanswered: some with the user's turn stored, some
not even that. Run with ``PYTHONPATH`` holding the repository.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr

from adapters.telegram import TelegramAdapter
from adapters.telegram.settings import TelegramSettings
from adapters.web import WebAdapter, create_app
from bot.config import WebSettings
from bot.store.base import Store
from bot.store.dynamo import DynamoStore
from bot.store.sqlite import SqliteStore
from tests.support.fakes import WindowEcho
from tests.support.telegram_harness import FAST, FAST_SETTINGS, SECRET, accounts, build_engine
from tests.support.telegram_server import TOKEN

LIFETIME = 60.0
#: The hold of an acknowledged update: short, so the next worker takes them soon.
HOLD = 2.0


def open_store(argv: list[str]) -> Store:
    if argv[0] == "sqlite":
        return SqliteStore(argv[1])
    return DynamoStore(argv[2], endpoint_url=argv[1], region="us-east-1")


async def main(api_url: str, where: list[str]) -> None:
    async with open_store(where) as store:
        engine = build_engine(store, WindowEcho(pause=0.3, chunk=2))
        telegram = TelegramSettings(
            token=SecretStr(TOKEN),
            mode="webhook",
            api_base_url=api_url,  # type: ignore[arg-type]
            webhook_secret=SecretStr(SECRET),
            inbox_hold_seconds=HOLD,
            inbox_sweep_seconds=30.0,
            **FAST_SETTINGS,
        )
        web_settings = WebSettings(port=0, public_url="https://bot.example.org")  # type: ignore[arg-type]
        adapter = TelegramAdapter(engine, telegram, web_settings, FAST, events=store)
        app = create_app(
            engine,
            accounts(store),
            upkeep=store,
            settings=web_settings.model_copy(update={"public_url": None}),
            extra_routes=adapter.web_routes(),
        )
        web = WebAdapter(app, access_log=False)
        async with web, adapter:
            print(f"READY {web.url}{telegram.webhook_path}", flush=True)
            await asyncio.sleep(LIFETIME)
    sys.exit(3)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
