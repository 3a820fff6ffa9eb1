"""The one posting service: the only code that writes ledger rows or balances.

A posting moves money between accounts as one ``LedgerTransaction`` whose
entries sum to zero. ``ledger_post_batch`` posts many at once (settlement
pays 100k experts in chunks) and ``ledger_post`` is its single-posting form;
``ledger_reverse`` corrects a transaction by posting its mirror image.

Guarantees, whoever calls:
- exactly once per idempotency key: posting a key again returns the first
  transaction (and refuses different entries under the same key);
- accounts are locked in primary-key order before anything is read or
  written, so two postings over the same accounts never deadlock and a
  balance check cannot race a concurrent debit;
- balances (a cache of the entries) change in the same database
  transaction, relative to the locked value (``F()`` / ``balance + delta``);
- no balance but the external one goes negative: checked here with a clear
  error, and by a database constraint as the last line of defence.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from annotations import audit
from rewards.bulk import insert_rows
from rewards.models import Account, LedgerEntry, LedgerTransaction

_KINDS = frozenset(LedgerTransaction.Kind.values)
# Above this many accounts, balances are updated with one statement instead of one F() update each.
_BULK_UPDATE_FROM = 16
_INSERT_BATCH = 5000  # accounts created per statement


class LedgerError(Exception):
    """The ledger refused a posting; nothing was written."""


class UnbalancedPosting(LedgerError):
    pass


class IdempotencyConflict(LedgerError):
    """The key was used before for a different movement of money."""


class InsufficientFunds(LedgerError):
    def __init__(self, account: Account, needed: int):
        self.account = account
        self.needed = needed
        super().__init__(
            f"account {account} holds {account.balance} base units; this needs {needed}."
        )


class NotReversible(LedgerError):
    pass


@dataclass(frozen=True)
class Posting:
    """One transaction to post: ``entries`` are (account id, signed amount) pairs summing to zero."""

    key: str
    kind: str
    entries: tuple[tuple[int, int], ...]
    memo: str = ""
    campaign_id: int | None = None
    epoch_id: int | None = None
    reverses_id: int | None = None
    created_by_id: int | None = None


@dataclass(frozen=True)
class Posted:
    transaction_id: int
    key: str
    created: bool  # False: the key had been posted before and nothing moved now


def posting(
    *, key: str, kind: str, entries: Iterable[tuple[Account | int, int]], memo: str = "",
    campaign=None, epoch=None, reverses=None, created_by=None,
) -> Posting:
    """Build a ``Posting`` from model instances or ids."""
    return Posting(
        key=key,
        kind=kind,
        entries=tuple((_id(account), amount) for account, amount in entries),
        memo=memo[:500],
        campaign_id=_id(campaign),
        epoch_id=_id(epoch),
        reverses_id=_id(reverses),
        created_by_id=_id(created_by),
    )


def _id(obj) -> int | None:
    if obj is None or isinstance(obj, int):
        return obj
    return obj.pk


def ledger_post(
    *, key: str, kind: str, entries: Iterable[tuple[Account | int, int]], memo: str = "",
    campaign=None, epoch=None, reverses=None, created_by=None,
) -> Posted:
    """Post one transaction: ``entries`` are (account, signed amount) pairs that sum to zero."""
    return ledger_post_batch(postings=[posting(
        key=key, kind=kind, entries=entries, memo=memo, campaign=campaign, epoch=epoch, reverses=reverses,
        created_by=created_by,
    )])[0]


def ledger_post_batch(*, postings: Sequence[Posting], now: datetime | None = None) -> list[Posted]:
    """Post many transactions atomically: all of them, or none.

    Keys already posted are skipped (their first transaction is returned)
    provided they carry the same entries. Balances are checked on the net
    effect of the batch. Call inside or outside a transaction; a batch is
    always its own atomic block (a savepoint when nested).
    """
    _validate(postings)
    if not postings:
        return []
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _post_locked(postings, now or timezone.now())
        except IntegrityError:
            # A concurrent poster inserted one of our keys between our check and
            # our insert (possible only when the postings' accounts differ);
            # the retry finds it and returns it. Anything else is re-raised.
            keys = [p.key for p in postings]
            if attempt == 2 or not LedgerTransaction.objects.filter(idempotency_key__in=keys).exists():
                raise
    raise AssertionError("unreachable")


def _validate(postings: Sequence[Posting]) -> None:
    seen: set[str] = set()
    for p in postings:
        if not p.key or len(p.key) > 200:
            raise LedgerError("an idempotency key of 1..200 characters is required.")
        if p.key in seen:
            raise LedgerError(f"idempotency key {p.key!r} appears twice in one batch.")
        seen.add(p.key)
        if p.kind not in _KINDS:
            raise LedgerError(f"unknown transaction kind {p.kind!r}.")
        if len(p.entries) < 2:
            raise UnbalancedPosting(f"{p.key}: a transaction needs at least two entries.")
        total = 0
        for account_id, amount in p.entries:
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise LedgerError(f"{p.key}: amounts are integer base units, got {amount!r}.")
            if amount == 0:
                raise LedgerError(f"{p.key}: an entry must move a non-zero amount.")
            if not isinstance(account_id, int):
                raise LedgerError(f"{p.key}: entries need account ids.")
            total += amount
        if total != 0:
            raise UnbalancedPosting(f"{p.key}: entries sum to {total}, not zero.")


def lock_accounts(account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock accounts (``SELECT ... FOR UPDATE``) in primary-key order; inside a transaction only.

    Services that read a balance before deciding what to post (slashing a
    fraction, refunding what is left) lock first with this, then post: the
    posting re-locks the same rows, which a transaction already holds.
    """
    ids = sorted(set(account_ids))
    accounts = {a.pk: a for a in Account.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    missing = set(ids) - accounts.keys()
    if missing:
        raise LedgerError(f"unknown accounts: {sorted(missing)}")
    return accounts


def _lock_balances(account_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """``lock_accounts`` without model instances: id -> (kind, balance), for batches of thousands."""
    ids = sorted(set(account_ids))
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of placeholders.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, kind, balance FROM {Account._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [ids],
            )
            rows = {pk: (kind, balance) for pk, kind, balance in cursor.fetchall()}
    else:
        rows = {
            pk: (kind, balance)
            for pk, kind, balance in Account.objects.select_for_update().filter(pk__in=ids).order_by("pk")
            .values_list("id", "kind", "balance")
        }
    if len(rows) != len(ids):
        raise LedgerError(f"unknown accounts: {sorted(set(ids) - rows.keys())}")
    return rows


def _post_locked(postings: Sequence[Posting], now: datetime) -> list[Posted]:
    locked = _lock_balances(account_id for p in postings for account_id, _ in p.entries)

    existing = _existing(postings)
    fresh = [p for p in postings if p.key not in existing]

    deltas: dict[int, int] = defaultdict(int)
    for p in fresh:
        for account_id, amount in p.entries:
            deltas[account_id] += amount
    for account_id, delta in deltas.items():
        kind, balance = locked[account_id]
        if kind != Account.Kind.EXTERNAL and balance + delta < 0:
            raise InsufficientFunds(Account.objects.get(pk=account_id), -delta)

    created: dict[str, int] = {}
    if fresh:
        ids = insert_rows(
            LedgerTransaction,
            ["idempotency_key", "kind", "memo", "campaign_id", "epoch_id", "reverses_id", "created_by_id", "created_at"],
            [(p.key, p.kind, p.memo, p.campaign_id, p.epoch_id, p.reverses_id, p.created_by_id, now) for p in fresh],
            with_ids=True,
        )
        created = {p.key: pk for p, pk in zip(fresh, ids)}
        insert_rows(
            LedgerEntry,
            ["transaction_id", "account_id", "amount", "created_at"],
            [(created[p.key], account_id, amount, now) for p in fresh for account_id, amount in p.entries],
        )
        _apply_deltas({k: v for k, v in deltas.items() if v})
        # The audit trail gets one row per new transaction, in this database transaction.
        audit.ledger_postings_recorded(fresh, created, now)

    return [
        Posted(transaction_id=created[p.key], key=p.key, created=True)
        if p.key in created
        else Posted(transaction_id=existing[p.key], key=p.key, created=False)
        for p in postings
    ]


def _existing(postings: Sequence[Posting]) -> dict[str, int]:
    """Keys already posted -> transaction id; refuse a key reused for different money."""
    by_key = {p.key: p for p in postings}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT idempotency_key, id FROM {LedgerTransaction._meta.db_table} WHERE idempotency_key = ANY(%s)",
                [list(by_key)],
            )
            found = dict(cursor.fetchall())
    else:
        found = dict(
            LedgerTransaction.objects.filter(idempotency_key__in=list(by_key)).values_list("idempotency_key", "id")
        )
    if not found:
        return {}
    stored: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for transaction_id, account_id, amount in LedgerEntry.objects.filter(
        transaction_id__in=list(found.values())
    ).values_list("transaction_id", "account_id", "amount"):
        stored[transaction_id].append((account_id, amount))
    kinds = dict(LedgerTransaction.objects.filter(pk__in=list(found.values())).values_list("id", "kind"))
    for key, transaction_id in found.items():
        wanted = by_key[key]
        if kinds[transaction_id] != wanted.kind or sorted(stored[transaction_id]) != sorted(wanted.entries):
            raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different transaction.")
    return found


def _apply_deltas(deltas: dict[int, int]) -> None:
    if not deltas:
        return
    if len(deltas) <= _BULK_UPDATE_FROM:
        updated = sum(Account.objects.filter(pk=account_id).update(balance=F("balance") + delta)
                      for account_id, delta in sorted(deltas.items()))
        if updated != len(deltas):
            raise LedgerError("a balance update missed an account.")
        return
    table = Account._meta.db_table
    items = sorted(deltas.items())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ", ".join(["(%s::bigint, %s::bigint)"] * len(items))
            cursor.execute(
                f"UPDATE {table} AS a SET balance = a.balance + v.delta "
                f"FROM (VALUES {values}) AS v(id, delta) WHERE a.id = v.id",
                [x for item in items for x in item],
            )
            if cursor.rowcount != len(items):
                raise LedgerError("a balance update missed an account.")
        else:
            cursor.executemany(
                f"UPDATE {table} SET balance = balance + %s WHERE id = %s", [(delta, pk) for pk, delta in items],
            )
            if cursor.rowcount != len(items):  # the rows changed over all the statements
                raise LedgerError("a balance update missed an account.")


# --------------------------------------------------------------------------
# Reversal
# --------------------------------------------------------------------------

# Stake movements are undone by the expert's own next move (bond again,
# unbond), claims have left the platform, and slashes go through
# services.slash_reverse, which also restores the unbonding request.
REVERSIBLE_KINDS = {
    LedgerTransaction.Kind.TOPUP,
    LedgerTransaction.Kind.FUND,
    LedgerTransaction.Kind.REFUND,
    LedgerTransaction.Kind.REWARD,
    LedgerTransaction.Kind.DUST,
}


def ledger_reverse(
    *, original: LedgerTransaction, memo: str = "", created_by=None, allow_kinds: set[str] | None = None,
) -> Posted:
    """Post the mirror image of ``original`` (key ``reverse:<original key>``): corrections never edit rows."""
    kinds = REVERSIBLE_KINDS if allow_kinds is None else allow_kinds
    if original.kind not in kinds:
        raise NotReversible(f"a {original.get_kind_display().lower()} transaction cannot be reversed.")
    entries = tuple(original.entries.order_by("id").values_list("account_id", "amount"))
    return ledger_post_batch(
        postings=[
            Posting(
                key=f"reverse:{original.idempotency_key}"[:200],
                kind=LedgerTransaction.Kind.REVERSAL,
                entries=tuple((account_id, -amount) for account_id, amount in entries),
                memo=(memo or f"Reversal of {original.get_kind_display().lower()} #{original.pk}")[:500],
                campaign_id=original.campaign_id,
                epoch_id=original.epoch_id,
                reverses_id=original.pk,
                created_by_id=_id(created_by),
            )
        ]
    )[0]


# --------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------


def singleton_account(kind: str) -> Account:
    account, _ = Account.objects.get_or_create(kind=kind)
    return account


def treasury_account() -> Account:
    return singleton_account(Account.Kind.TREASURY)


def external_account() -> Account:
    return singleton_account(Account.Kind.EXTERNAL)


def lab_account(lab) -> Account:
    return Account.objects.get_or_create(kind=Account.Kind.LAB, lab_id=_id(lab))[0]


def escrow_account(campaign) -> Account:
    return Account.objects.get_or_create(kind=Account.Kind.ESCROW, campaign_id=_id(campaign))[0]


def sales_account(campaign) -> Account:
    """Where a buyer's payment for a campaign's data waits until it is shared (or refunded)."""
    return Account.objects.get_or_create(kind=Account.Kind.SALES, campaign_id=_id(campaign))[0]


def expert_account(expert, kind: str) -> Account:
    if kind not in Account.EXPERT_KINDS:
        raise LedgerError(f"{kind} is not an expert account kind.")
    return Account.objects.get_or_create(kind=kind, expert_id=_id(expert))[0]


def expert_accounts_bulk(expert_ids: Iterable[int], kind: str) -> dict[int, int]:
    """expert id -> account id of ``kind``, creating missing accounts in bulk."""
    ids = sorted(set(expert_ids))
    found: dict[int, int] = {}
    for start in range(0, len(ids), _INSERT_BATCH):
        chunk = ids[start : start + _INSERT_BATCH]
        found.update(
            Account.objects.filter(kind=kind, expert_id__in=chunk).values_list("expert_id", "id")
        )
    missing = [i for i in ids if i not in found]
    if missing:
        Account.objects.bulk_create(
            [Account(kind=kind, expert_id=i) for i in missing], batch_size=_INSERT_BATCH, ignore_conflicts=True,
        )
        for start in range(0, len(missing), _INSERT_BATCH):
            chunk = missing[start : start + _INSERT_BATCH]
            found.update(
                Account.objects.filter(kind=kind, expert_id__in=chunk).values_list("expert_id", "id")
            )
    return found
