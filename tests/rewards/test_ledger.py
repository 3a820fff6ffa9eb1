"""The posting service, reversals, the database's own guarantees, reconciliation, amounts."""
from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, transaction

from rewards import ledger
from rewards.amounts import format_amount, parse_amount
from rewards.models import Account, LedgerEntry, LedgerTransaction
from rewards.selectors import ledger_differences
from tests import factories

Kind = LedgerTransaction.Kind
pytestmark = pytest.mark.django_db


def balance(account: Account) -> int:
    return Account.objects.get(pk=account.pk).balance


@pytest.fixture
def lab_acct(lab):
    return ledger.lab_account(lab)


def deposit(account: Account, amount: int, key: str = "deposit-1"):
    return ledger.ledger_post(
        key=key, kind=Kind.TOPUP, entries=[(ledger.external_account(), -amount), (account, amount)],
    )


def test_posting_moves_money_and_entries_sum_to_zero(lab_acct):
    posted = deposit(lab_acct, 5_000_000)

    assert posted.created
    assert balance(lab_acct) == 5_000_000
    assert balance(ledger.external_account()) == -5_000_000
    amounts = LedgerEntry.objects.filter(transaction_id=posted.transaction_id).values_list("amount", flat=True)
    assert sorted(amounts) == [-5_000_000, 5_000_000]
    assert ledger_differences() == []


def test_replaying_a_key_moves_money_once(lab_acct):
    first = deposit(lab_acct, 700, key="invoice-42")
    again = deposit(lab_acct, 700, key="invoice-42")

    assert again == ledger.Posted(first.transaction_id, "invoice-42", created=False)
    assert balance(lab_acct) == 700
    assert LedgerTransaction.objects.count() == 1


def test_a_key_reused_for_different_money_is_refused(lab_acct):
    deposit(lab_acct, 700, key="invoice-42")

    with pytest.raises(ledger.IdempotencyConflict):
        deposit(lab_acct, 900, key="invoice-42")
    assert balance(lab_acct) == 700


def test_unbalanced_postings_and_fractional_amounts_are_refused(lab_acct):
    external = ledger.external_account()
    with pytest.raises(ledger.UnbalancedPosting):
        ledger.ledger_post(key="bad", kind=Kind.TOPUP, entries=[(external, -5), (lab_acct, 4)])
    with pytest.raises(ledger.LedgerError):
        ledger.ledger_post(key="float", kind=Kind.TOPUP, entries=[(external, -1.5), (lab_acct, 1.5)])
    assert LedgerTransaction.objects.count() == 0
    assert balance(lab_acct) == 0


def test_overdraft_is_refused_and_nothing_is_written(lab, lab_acct):
    deposit(lab_acct, 100)
    escrow = ledger.escrow_account(factories.CampaignFactory(lab=lab))

    with pytest.raises(ledger.InsufficientFunds):
        ledger.ledger_post(key="fund-too-much", kind=Kind.FUND, entries=[(lab_acct, -101), (escrow, 101)])
    assert balance(lab_acct) == 100
    assert balance(escrow) == 0
    assert not LedgerTransaction.objects.filter(idempotency_key="fund-too-much").exists()


def test_database_refuses_a_negative_balance_except_external(lab_acct):
    # The posting service checks first; the constraint is the last line of defence.
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=lab_acct.pk).update(balance=-1)
    external = ledger.external_account()
    Account.objects.filter(pk=external.pk).update(balance=-1)  # allowed: it mirrors tokens brought in
    assert balance(external) == -1


def test_ledger_rows_cannot_be_edited(lab_acct):
    posted = deposit(lab_acct, 100)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(transaction_id=posted.transaction_id).update(amount=1_000_000)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerTransaction.objects.filter(pk=posted.transaction_id).update(memo="edited")
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-100, 100]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's test flush needs DELETE")
def test_ledger_rows_cannot_be_deleted(lab_acct):
    deposit(lab_acct, 100)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.all().delete()
    assert LedgerEntry.objects.count() == 2


def test_reversal_posts_the_mirror_image_once(lab_acct):
    posted = deposit(lab_acct, 250)
    original = LedgerTransaction.objects.get(pk=posted.transaction_id)

    reversal = ledger.ledger_reverse(original=original, memo="deposit bounced")
    again = ledger.ledger_reverse(original=original)

    assert reversal.created and not again.created and again.transaction_id == reversal.transaction_id
    assert balance(lab_acct) == 0
    assert balance(ledger.external_account()) == 0
    row = LedgerTransaction.objects.get(pk=reversal.transaction_id)
    assert (row.kind, row.reverses_id, row.memo) == (Kind.REVERSAL, original.pk, "deposit bounced")
    # The original is untouched: corrections are new rows.
    assert sorted(original.entries.values_list("amount", flat=True)) == [-250, 250]


def test_reversal_that_would_overdraw_is_refused(lab, lab_acct):
    deposit(lab_acct, 250)
    escrow = ledger.escrow_account(factories.CampaignFactory(lab=lab))
    ledger.ledger_post(key="fund", kind=Kind.FUND, entries=[(lab_acct, -200), (escrow, 200)])
    original = LedgerTransaction.objects.get(idempotency_key="deposit-1")

    with pytest.raises(ledger.InsufficientFunds):
        ledger.ledger_reverse(original=original)
    assert balance(lab_acct) == 50


def test_stake_movements_are_not_reversed_by_hand(expert):
    factories.expert_deposit(expert, 10_000_000)
    available = ledger.expert_account(expert, Account.Kind.AVAILABLE)
    bonded = ledger.expert_account(expert, Account.Kind.BONDED)
    posted = ledger.ledger_post(key="bond", kind=Kind.BOND, entries=[(available, -5), (bonded, 5)])

    with pytest.raises(ledger.NotReversible):
        ledger.ledger_reverse(original=LedgerTransaction.objects.get(pk=posted.transaction_id))


def test_batch_posting_is_all_or_nothing(lab, lab_acct):
    deposit(lab_acct, 1_000)
    escrows = [ledger.escrow_account(factories.CampaignFactory(lab=lab)) for _ in range(3)]
    postings = [
        ledger.posting(key=f"fund-{i}", kind=Kind.FUND, entries=[(lab_acct, -400), (escrow, 400)])
        for i, escrow in enumerate(escrows)
    ]  # 1,200 from 1,000

    with pytest.raises(ledger.InsufficientFunds):
        ledger.ledger_post_batch(postings=postings)
    assert balance(lab_acct) == 1_000
    assert not LedgerTransaction.objects.filter(kind=Kind.FUND).exists()

    results = ledger.ledger_post_batch(postings=postings[:2])
    assert [r.created for r in results] == [True, True]
    assert balance(lab_acct) == 200


def test_batch_posting_many_accounts_updates_every_balance(lab_acct):
    experts = [factories.ExpertFactory() for _ in range(40)]
    accounts = ledger.expert_accounts_bulk([e.pk for e in experts], Account.Kind.AVAILABLE)
    deposit(lab_acct, 10**9)
    escrow = ledger.escrow_account(factories.CampaignFactory(lab=lab_acct.lab))
    ledger.ledger_post(key="fund", kind=Kind.FUND, entries=[(lab_acct, -10**9), (escrow, 10**9)])
    postings = [
        ledger.Posting(key=f"pay-{e.pk}", kind=Kind.REWARD, entries=((escrow.pk, -(k + 1)), (accounts[e.pk], k + 1)))
        for k, e in enumerate(experts)
    ]

    ledger.ledger_post_batch(postings=postings)
    replay = ledger.ledger_post_batch(postings=postings)

    assert not any(r.created for r in replay)
    got = dict(Account.objects.filter(pk__in=accounts.values()).values_list("expert_id", "balance"))
    assert got == {e.pk: k + 1 for k, e in enumerate(experts)}
    assert balance(escrow) == 10**9 - sum(range(1, 41))
    assert ledger_differences() == []


def test_reconcile_command_passes_on_a_sound_ledger(lab_acct, capsys):
    deposit(lab_acct, 1_000)
    call_command("ledger_reconcile")
    assert "no differences" in capsys.readouterr().out


def test_reconcile_command_reports_a_tampered_balance_and_fails(lab_acct, capsys):
    deposit(lab_acct, 1_000)
    Account.objects.filter(pk=lab_acct.pk).update(balance=1_500)  # a bug or a hand edit

    with pytest.raises(CommandError):
        call_command("ledger_reconcile")
    err = capsys.readouterr().err
    assert f"account {lab_acct.pk}" in err and "expected 1000, found 1500" in err
    assert "sum of all balances" in err


def test_amounts_are_formatted_and_parsed_exactly(settings):
    settings.DATADAO_TOKEN_DECIMALS = 6
    assert format_amount(1_234_567) == "1.234567 DDF"
    assert format_amount(12_500_000) == "12.50 DDF"
    assert format_amount(1) == "0.000001 DDF"
    assert format_amount(-3_000_000_000_000) == "-3,000,000.00 DDF"
    assert format_amount(10**24) == "1,000,000,000,000,000,000.00 DDF"  # beyond float precision, still exact
    assert parse_amount("12.5") == 12_500_000
    assert parse_amount("1,000 DDF") == 1_000_000_000
    assert parse_amount("0.000001") == 1
    for bad in ["0.0000001", "-1", "abc", "nan"]:
        with pytest.raises(ValueError):
            parse_amount(bad)


# --------------------------------------------------------------------------
# Races (PostgreSQL: real row locks)
# --------------------------------------------------------------------------

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")


def _in_threads(n: int, fn) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_key_move_money_once():
    lab_acct = ledger.lab_account(factories.LabFactory())
    external = ledger.external_account()

    results = _in_threads(8, lambda i: ledger.ledger_post(
        key="same-deposit", kind=Kind.TOPUP, entries=[(external, -1_000), (lab_acct, 1_000)],
    ))

    assert all(isinstance(r, ledger.Posted) for r in results), results
    assert sum(r.created for r in results) == 1
    assert balance(lab_acct) == 1_000
    assert ledger_differences() == []


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_debits_never_overdraw():
    lab = factories.LabFactory()
    lab_acct = ledger.lab_account(lab)
    deposit(lab_acct, 1_000)
    escrows = [ledger.escrow_account(factories.CampaignFactory(lab=lab)) for _ in range(8)]

    results = _in_threads(8, lambda i: ledger.ledger_post(
        key=f"fund-{i}", kind=Kind.FUND, entries=[(lab_acct, -300), (escrows[i], 300)],
    ))

    assert sum(isinstance(r, ledger.Posted) for r in results) == 3
    assert all(isinstance(r, (ledger.Posted, ledger.InsufficientFunds)) for r in results), results
    assert balance(lab_acct) == 100
    assert ledger_differences() == []


# --------------------------------------------------------------------------
# Admin: read-only rows; top-ups and reversals go through services
# --------------------------------------------------------------------------


@pytest.fixture
def moderator_client(client):
    client.force_login(factories.rewards_moderator())
    return client


def test_a_moderator_tops_up_a_lab_from_admin_once_per_reference(moderator_client, lab):
    url = "/admin/rewards/labbalance/"
    form = {"action": "top_up", "_selected_action": [lab.pk], "apply": "1",
            "amount": "1,500.25", "reference": "INV-2026-001"}

    first = moderator_client.post(url, form, follow=True)
    again = moderator_client.post(url, form, follow=True)

    assert balance(ledger.lab_account(lab)) == 1_500_250_000
    assert "credited 1,500.25 DDF" in first.content.decode()
    assert "was already credited; nothing moved" in again.content.decode()


def test_the_top_up_action_asks_for_amount_and_reference_first(moderator_client, lab):
    response = moderator_client.post(
        "/admin/rewards/labbalance/", {"action": "top_up", "_selected_action": [lab.pk]},
    )
    assert response.status_code == 200
    assert b'name="reference"' in response.content
    assert not LedgerTransaction.objects.exists()


def test_ledger_rows_are_read_only_in_admin(moderator_client, lab_acct):
    posted = deposit(lab_acct, 100)
    page = moderator_client.get(f"/admin/rewards/ledgertransaction/{posted.transaction_id}/change/")
    assert page.status_code == 200 and b'type="submit" value="Save"' not in page.content
    assert moderator_client.get("/admin/rewards/ledgertransaction/add/").status_code == 403
    assert moderator_client.post(
        f"/admin/rewards/ledgertransaction/{posted.transaction_id}/delete/", {"post": "yes"},
    ).status_code == 403
    assert LedgerTransaction.objects.filter(pk=posted.transaction_id).exists()


def test_a_moderator_reverses_a_transaction_from_admin(moderator_client, lab_acct):
    posted = deposit(lab_acct, 100)
    moderator_client.post("/admin/rewards/ledgertransaction/",
                          {"action": "reverse_transactions", "_selected_action": [posted.transaction_id]})
    assert balance(lab_acct) == 0
    assert LedgerTransaction.objects.get(reverses_id=posted.transaction_id).kind == Kind.REVERSAL


def test_non_moderator_staff_cannot_see_the_ledger(client, lab_acct):
    client.force_login(factories.UserFactory(is_staff=True))
    assert client.get("/admin/rewards/ledgertransaction/").status_code == 403
