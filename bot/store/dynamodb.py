"""``DynamoStore``: the production :class:`~bot.store.base.Store`, one DynamoDB table.

Processes share nothing but the table; every invariant below holds across them.
The code is in the :mod:`bot.store.dynamo` package (keys, codec, table, conversations,
linking, store, admin); this module is its public face.

Items (single table, ``PK`` and ``SK`` strings; ``#`` and ``%`` in values are escaped)
    ===================================  ==========================  =======================
    PK                                   SK                          holds
    ===================================  ==========================  =======================
    ``ACCOUNT#<casefolded name>``        ``ACCOUNT``                 account id: the name's
                                                                     reservation
    ``OWNER#<owner>``                    ``ACCOUNT``                 the account record
    ``OWNER#<owner>``                    ``PREFS``                   ``p:<name>`` attributes
    ``OWNER#<owner>``                    ``USAGE``                   token totals (ADD)
    ``OWNER#<owner>``                    ``SLOT#<persona>#<scope>``  index: a conversation key
    ``OWNER#account:<id>``               ``IDENTITY#<plat>#<id>``    index: a linked identity
    ``OWNER#account:<id>``               ``LINKCODE#…``/``WEBSESSION#…``  index (with TTL)
    ``IDENTITY#<platform>#<user id>``    ``IDENTITY``                the link to an account
    ``LINKCODE#<hash>``                  ``LINKCODE``                account id, ``expires_at``
    ``WEBSESSION#<hash>``                ``WEBSESSION``              account id, ``expires_at``
    ``CONV#<owner>#<persona>#<scope>``   ``RECORD#<cid>``            one conversation: start,
                                                                     creation order
    ``CONV#<owner>#<persona>#<scope>``   ``TURN#<cid>#<seq:010d>``   one turn
    ``CONV#<owner>#<persona>#<scope>``   ``~META``                   version, current cid,
                                                                     last seq, generations,
                                                                     backend state, summary
    ===================================  ==========================  =======================

    No GSI: what must be found by something other than its key (an owner's
    conversations, identities, codes and sessions) has an index item in the owner's
    partition, written in the same transaction as the item itself, so that it is
    strongly consistent (a GSI is not: a session created just before an account is
    deleted could survive it). An account is found by id through its record and by name
    through the reservation (two GetItems on login).

Conversations
    ``cid`` is ``G<generation:010d>`` for the key's own conversations (a reset makes the
    next one a generation higher) and ``A<uid>`` for archived ones moved in by a link:
    ``A`` < ``G``, and ``~META`` sorts after every ``TURN#``, so the current
    conversation's turns are always the newest ``TURN#`` items and **a window is one
    Query**: descending, ``Limit N + 1``, answering META then the newest N turns.
    **An append is one TransactWriteItems**: the turns, plus an update of META bumping
    the version under the condition ``version = :expected AND cid = :cid AND last_seq =
    :seq``; a failed condition is a :class:`~bot.errors.VersionConflict` (the META as it
    is comes back with ``ReturnValuesOnConditionCheckFailure``). Versions never go back
    (a reset bumps them; linking bumps the guest's and the account's), except that
    ``/forget`` deletes META with everything else, as the other stores do.

Expiry
    Link codes and sessions carry ``expires_at`` (epoch seconds), the table's TTL
    attribute. DynamoDB deletes expired items only eventually, so every read checks it:
    ``take_link_code`` is a DeleteItem with the condition ``expires_at > :now`` and
    ``ReturnValues=ALL_OLD`` (single use across processes: one caller gets the item),
    ``get_web_session`` compares after its GetItem.

Deleting
    ``forget_owner`` and ``delete_account`` walk the owner's partition (Query, paginated)
    and each conversation partition, deleting by BatchWriteItem 25 at a time and sending
    unprocessed items again. ``delete_account`` first marks the account ``deleting``
    (links, codes and sessions check that the account is live in their transaction) and
    deletes its record last, so an interrupted deletion is finished by the next one.

Calls per chat message: 3 (resolve_identity, append user turn, append reply)
    The engine calls ``resolve_identity``, ``load_window`` and ``append_turns`` twice.
    ``resolve_identity`` is one BatchGetItem of the identity, the preferences of the
    owner it spoke for last time in this process and, of the conversation that owner
    used last here, META and the turns of its next window (at most 100 keys). If META
    shows those turns are the window (same current conversation, its last seq within
    what was read) the ``load_window`` that follows costs nothing; else it is one Query.
    Appends need no read first: this process's last view of the key supplies cid and
    last seq, and the condition catches a stale view (then it reads META once).
    A message whose identity, owner or conversation this process has not seen, or whose
    conversation another process wrote more than a turn or two to since, costs 4-5 calls.

What is cached in-process, and why it is safe
    Nothing that is served without being read again in the same message. Kept are
    *hints*: per identity, the owner it spoke for; per owner, its last conversation key;
    per key, the last version, cid and last seq seen. Hints decide what the one
    BatchGetItem reads and which keys an append writes; the data itself (link,
    preferences, META, turns) is read fresh for every message, and every write is
    conditional on META. So a wrong hint costs a call, never a wrong answer: a window
    is only served from a prefetch for exactly its key (owner included) when the META
    read alongside it says so, and a prefetch older than this process's own last write
    to the key is dropped; no owner's data can reach another, and no turn is lost.
    Staleness is that of any read: what changed between the BatchGetItem and the
    append is caught by the version condition. Hints are bounded (``cache_size``,
    least recently used go) and dropped on link, unlink, forget and account deletion.
    Read capacity is the price: a prefetched window is read by key (each turn rounds up
    to a whole read unit) rather than by a Query (which sums the sizes).

Errors
    botocore retries throttling and transient errors (``standard`` or ``adaptive`` retry
    mode, ``max_attempts``); a cancelled transaction is sent again while the only
    reasons are throttling or a conflicting transaction. What outlives the retries is a
    :class:`~bot.errors.StoreUnavailable` naming the table and operation.
"""

from __future__ import annotations

from bot.store.dynamo.admin import TableReport, check_table, create_table
from bot.store.dynamo.store import DynamoStore
from bot.store.dynamo.table import DynamoStats

__all__ = ["DynamoStats", "DynamoStore", "TableReport", "check_table", "create_table"]
