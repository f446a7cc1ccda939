"""An account's data as one JSON-ready document ("export my data").

Everything stored about the account except its password hash: the account, its
linked identities, its recent account activity (links and unlinks), its preferences
and every conversation (current and archived) with all turns (and what was sent with
them: file names and types, voice notes' transcripts, text files' text; never the
files). Times are Unix seconds, as stored, plus an ISO 8601 form for people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.messages import account_owner
from bot.store.base import Account, AuthStore

EXPORT_FORMAT = "personabridge-export/1"
#: The most notices an export lists (newest first); they expire on their own anyway.
NOTICES_EXPORTED = 1000


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


async def export_account(store: AuthStore, account: Account, now: float) -> dict[str, Any]:
    owner = account_owner(account.id)
    identities = await store.list_identities(account.id)
    preferences = await store.get_preferences(owner)
    conversations = await store.export_owner(owner)
    notices = await store.list_notices(account.id, now, NOTICES_EXPORTED)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": iso(now),
        "account": {
            "id": account.id,
            "username": account.username,
            "created_at": account.created_at,
            "created": iso(account.created_at),
        },
        "identities": [
            {
                "platform": link.platform,
                "user_id": link.user_id,
                "display_name": link.display_name,
                "linked_at": link.linked_at,
                "linked": iso(link.linked_at),
            }
            for link in identities
        ],
        "activity": [
            {"at": notice.created_at, "when": iso(notice.created_at), "text": notice.text}
            for notice in notices
        ],
        "preferences": preferences,
        "conversations": [
            {
                "persona_id": record.persona_id,
                "scope": record.scope,
                "archived": record.archived,
                "started_at": record.started_at,
                "turns": [
                    {
                        "seq": turn.seq,
                        "role": turn.role,
                        "author": turn.author,
                        "text": turn.text,
                        "created_at": turn.created_at,
                        # what was sent with it: metadata, transcripts, file text
                        **(
                            {"attachments": [a.to_json() for a in turn.attachments]}
                            if turn.attachments
                            else {}
                        ),
                    }
                    for turn in record.turns
                ],
            }
            for record in conversations
        ],
    }
