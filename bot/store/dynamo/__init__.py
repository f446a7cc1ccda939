"""``DynamoStore``: the production :class:`~bot.store.base.Store`, one DynamoDB table.

Processes share nothing but the table; every invariant below holds across them.
The code is in this package's modules (keys, codec, table, items, recent, conversations,
linking, consent, events, accounts, store, admin); this module is its public face.

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
    ``OWNER#account:<id>``               ``LINKCODE#<hash>``, ...    index, with its expiry
    ``IDENTITY#<platform>#<user id>``    ``IDENTITY``                the link to an account
    ``LINKCODE#<hash>``                  ``LINKCODE``                account id, ``expires_at``
    ``WEBSESSION#<hash>``                ``WEBSESSION``              account id, ``expires_at``
    ``EPOCH#<owner>``                    ``EPOCH``                   the owner's epoch, and
                                                                     ``deleted``: a tombstone
                                                                     every append checks
    ``CONV#<owner>#<persona>#<scope>``   ``RECORD#<cid>``            one conversation: start,
                                                                     creation order
    ``CONV#<owner>#<persona>#<scope>``   ``TURN#<cid>#<seq:010d>``   one turn
    ``CONV#<owner>#<persona>#<scope>``   ``~META``                   version, current cid,
                                                                     last seq, generations,
                                                                     backend state, summary,
                                                                     a copy of the newest turn,
                                                                     the lease (holder, until)
    ``EVENT#<source>#<event id>``        ``EVENT``                   a platform event seen
                                                                     (``expires_at``)
    ``INBOX#<source>``                   ``<event id>``              an event acknowledged, not
                                                                     answered yet: payload,
                                                                     who holds it until when
    ===================================  ==========================  =======================

    No GSI: what must be found by something other than its key (an owner's
    conversations, identities, codes and sessions) has an index item in the owner's
    partition, written in the same transaction as the item itself, so that it is
    strongly consistent (a GSI is not: a session created just before an account is
    deleted could survive it). An account is found by id through its record and by name
    through the reservation (two GetItems on login).

Conversations
    ``cid`` is ``G<generation:010d>-<uid>`` for the key's own conversations (a reset
    makes the next one a generation higher; the random uid makes every cid unique for
    good, even after ``/forget``) and ``A<uid>`` for archived ones moved in by a link:
    ``A`` < ``G``, and ``~META`` sorts after every ``TURN#``, so the current
    conversation's turns are always the newest ``TURN#`` items and **a window is one
    Query**: descending, ``Limit N + 1``, answering META then the newest N turns.
    **An append is one TransactWriteItems**: the turns, plus an update of META bumping
    the version under the condition ``version = :expected AND cid = :cid AND last_seq =
    :seq`` (and keeping a copy of the newest turn). A failed condition is a
    :class:`~bot.errors.VersionConflict`, and META as it is comes back with it
    (``ReturnValuesOnConditionCheckFailure``), so the engine's reload after a conflict
    (a window of one turn) costs no call. The conversation's lease (:mod:`bot.leases`)
    is set or removed by that same update of META: taking it adds the condition that no
    other holder's lease is live. Versions never go back (a reset bumps them; a
    link bumps the guest key's, and the account key's when the guest's conversation
    becomes its current one), except that ``/forget`` deletes META with everything
    else, as the other stores do.

Expiry
    Link codes and sessions carry ``expires_at`` (epoch seconds), the table's TTL
    attribute. DynamoDB deletes expired items only eventually, so every read checks it:
    ``take_link_code`` is a DeleteItem with the condition ``expires_at > :now`` and
    ``ReturnValues=ALL_OLD`` (single use across processes: one caller gets the item),
    ``get_web_session`` compares after its GetItem. ``purge_expired`` leaves the
    deleting to TTL: it makes no call and returns 0 (a Scan would read the whole table).
    Pending links (``PENDINGLINK#<platform>#<user id>``), the per-account link code
    slots (``LINKSLOT#<n>``, which cap an account's live codes) and account notices
    (``NOTICE#…`` in the account's partition) work the same way: see
    :mod:`~bot.store.dynamo.consent`.

Deleting
    ``forget_owner`` and ``delete_account`` walk the owner's partition (Query, paginated)
    and each conversation partition, deleting by BatchWriteItem 25 at a time and sending
    unprocessed items again. ``delete_account`` first marks the account ``deleting``
    (links, codes and sessions check that the account is live in their transaction) and
    deletes its record last, so an interrupted deletion is finished by the next one.
    A link copies the guest's conversations (keys cannot be renamed) and hands each over
    in a transaction; an interrupted link is completed by linking again
    (:mod:`~bot.store.dynamo.linking`).

Calls per chat message: 3 (BatchGetItem, TransactWriteItems twice)
    The engine calls ``resolve_identity``, ``load_window`` and ``append_turns`` twice.
    ``resolve_identity`` is one BatchGetItem of the identity, the preferences of the
    owner it spoke for last time in this process and, of the conversation that owner
    used last here, META and the turns of its next window that this process does not
    hold yet (usually just the two slots after the newest turn it knows, in case another
    process wrote there). If META shows the window is then complete (same conversation,
    every turn at hand), ``load_window`` costs nothing; else it is one Query. The web,
    which knows the account from its session, calls ``get_preferences`` instead: it
    brings the window along the same way. Appends
    need no read first: this process's last view of the key supplies cid and last seq,
    and the condition catches a stale view (then META is read once). An identity, owner
    or conversation this process has not seen costs a call or two more (4-5); so does a
    conversation another process wrote more than one message to since.

What is cached in-process, and why it is safe (:mod:`~bot.store.dynamo.recent`)
    *Hints*: per identity, the owner it spoke for; per owner, its last conversation key;
    per key, the last version, cid and last seq seen. They decide what the one
    BatchGetItem reads and which keys an append writes, and they are checked every time:
    the link, the preferences and META are read afresh for every message, and every
    write is conditional on META. *Turns*: the recent turns of recently used
    conversations. A turn is immutable (written once, under the version condition, at a
    ``(key, cid, seq)`` never written again, cids being unique), and a remembered turn
    is only served for the very ``(key, cid, seq)`` that META, read in the same message,
    asks for. So nothing is served stale: no owner's data can reach another (the key
    names the owner, and the link is read with every message), no turn is lost (writes
    are conditional), and a forget, reset or link in another process shows at once.
    The staleness is that of any read: what changes between the BatchGetItem and the
    append is caught by the version condition. Both are bounded (``cache_size`` keys and
    identities, ``window_cache`` conversations; least recently used go first) and are
    dropped on link, unlink, forget and account deletion.

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
