"""Celery tasks of the rewards side. Each takes ids, calls one service, and is safe to run twice."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError, transaction

from rewards import services, settlement


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
