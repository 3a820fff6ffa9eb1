"""Celery tasks of the rewards side. Each takes ids, calls one service, and is safe to run twice."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError, transaction

from rewards import revenue, services, settlement


@shared_task(
    name="rewards.settle_epoch",
    ignore_result=True,
    # An earlier epoch still settling, a lost connection or a deadlock victim:
    # all pass. Settlement is idempotent, so a retry (or a redelivery after a
    # worker died mid-way) pays nobody twice.
    autoretry_for=(settlement.EpochNotReady, OperationalError),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=12,
)
def settle_epoch(epoch_id: int) -> None:
    settlement.epoch_settle(epoch_id=epoch_id)


@shared_task(name="rewards.epochs_roll", ignore_result=True)
def epochs_roll() -> int:
    """Open and end epochs, then queue settlement of the due ones (periodic, by beat)."""
    with transaction.atomic():
        due = settlement.epochs_roll()
        for epoch_id in due:
            transaction.on_commit(lambda epoch_id=epoch_id: settle_epoch.delay(epoch_id))
    return len(due)


@shared_task(name="rewards.unbonding_release_due", ignore_result=True)
def unbonding_release_due() -> int:
    """Release stake whose cooldown has ended (periodic, by beat)."""
    return services.unbonding_release_due()


@shared_task(
    name="rewards.purchase_settle",
    ignore_result=True,
    # The export still building, a lost connection or a deadlock victim: all
    # pass. The purchase is settled under its row lock and one ledger key, so
    # a retry or a redelivery moves the money once.
    autoretry_for=(revenue.PurchaseNotReady, OperationalError),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=12,
)
def purchase_settle(purchase_id: int) -> None:
    """Share a data purchase's price among the contributors of the exported rows (or refund a failed export)."""
    revenue.data_purchase_settle(purchase_id=purchase_id)


@shared_task(name="rewards.purchases_settle_due", ignore_result=True)
def purchases_settle_due() -> int:
    """Settle every data purchase whose export has finished and that no task settled yet (periodic, by beat)."""
    return revenue.purchases_settle_due()


@shared_task(name="rewards.chain_publish_root", ignore_result=True, autoretry_for=(OSError,), retry_backoff=30,
             max_retries=5)
def chain_publish_root() -> dict | None:
    """Publish the cumulative claim root on-chain when ``CHAIN_RPC_URL`` is set (periodic; a no-op otherwise,
    and when the root on chain is already the latest)."""
    from rewards import chain

    connected = chain.connect()
    return chain.publish_root(connected) if connected is not None else None


@shared_task(name="rewards.chain_index_claims", ignore_result=True, autoretry_for=(OSError,), retry_backoff=30,
             max_retries=5)
def chain_index_claims() -> dict | None:
    """Index the distributor's ``Claimed`` events into the ledger, from the block after the last indexed one
    (periodic; a no-op without ``CHAIN_RPC_URL``; a re-run posts nothing twice)."""
    from rewards import chain, chain_claims

    connected = chain.connect()
    return chain_claims.claims_index(connected) if connected is not None else None
