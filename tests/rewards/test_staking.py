"""Bonding, unbonding with a cooldown, release, slashing and its reversal; the stake API."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.services import ServiceError
from rewards import ledger, services
from annotations.models import Expert
from rewards.models import Account, LedgerTransaction, Unbonding
from rewards.selectors import expert_balances, expert_bonded_stake, ledger_differences
from rewards.tasks import unbonding_release_due
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000


def balances(expert) -> tuple[int, int, int]:
    b = expert_balances(expert=expert)
    return b.available, b.bonded, b.unbonding


def treasury() -> int:
    return ledger.treasury_account().balance


@pytest.fixture
def funded_expert(expert):
    factories.expert_deposit(expert, 100 * TOKEN)
    return expert


def test_bond_moves_available_to_bonded_and_counts_as_stake(funded_expert):
    services.stake_bond(expert=funded_expert, amount=30 * TOKEN)

    assert balances(funded_expert) == (70 * TOKEN, 30 * TOKEN, 0)
    assert expert_bonded_stake(expert=funded_expert) == 30 * TOKEN


def test_bond_more_than_available_is_refused(funded_expert):
    with pytest.raises(ServiceError, match="insufficient balance") as exc:
        services.stake_bond(expert=funded_expert, amount=101 * TOKEN)
    assert exc.value.field == "amount"
    assert balances(funded_expert) == (100 * TOKEN, 0, 0)


def test_bond_below_the_minimum_stake_is_refused(funded_expert, settings):
    settings.DATADAO_MIN_STAKE = 5 * TOKEN
    with pytest.raises(ServiceError, match="below minimum"):
        services.stake_bond(expert=funded_expert, amount=4 * TOKEN)
    services.stake_bond(expert=funded_expert, amount=5 * TOKEN)
    services.stake_bond(expert=funded_expert, amount=1)  # topping up an existing stake is fine
    assert balances(funded_expert)[1] == 5 * TOKEN + 1


def test_unbond_starts_a_cooldown_and_refuses_a_second_one(funded_expert, settings):
    settings.DATADAO_UNBONDING_DAYS = 7
    services.stake_bond(expert=funded_expert, amount=50 * TOKEN)
    before = timezone.now()

    unbonding = services.stake_unbond(expert=funded_expert, amount=20 * TOKEN)

    assert balances(funded_expert) == (50 * TOKEN, 30 * TOKEN, 20 * TOKEN)
    assert before + timedelta(days=7) <= unbonding.releases_at <= timezone.now() + timedelta(days=7)
    assert expert_bonded_stake(expert=funded_expert) == 30 * TOKEN  # cooling stake does not count
    with pytest.raises(ServiceError, match="already unbonding") as exc:
        services.stake_unbond(expert=funded_expert, amount=1 * TOKEN)
    assert exc.value.status == 409


def test_unbond_must_leave_nothing_or_the_minimum(funded_expert, settings):
    settings.DATADAO_MIN_STAKE = 10 * TOKEN
    services.stake_bond(expert=funded_expert, amount=15 * TOKEN)

    with pytest.raises(ServiceError, match="below minimum"):
        services.stake_unbond(expert=funded_expert, amount=10 * TOKEN)
    with pytest.raises(ServiceError, match="insufficient balance"):
        services.stake_unbond(expert=funded_expert, amount=16 * TOKEN)
    services.stake_unbond(expert=funded_expert, amount=15 * TOKEN)
    assert balances(funded_expert) == (85 * TOKEN, 0, 15 * TOKEN)


def test_release_job_pays_out_after_the_cooldown_once(funded_expert):
    services.stake_bond(expert=funded_expert, amount=40 * TOKEN)
    unbonding = services.stake_unbond(expert=funded_expert, amount=40 * TOKEN)

    assert services.unbonding_release_due(now=unbonding.releases_at - timedelta(seconds=1)) == 0
    assert balances(funded_expert) == (60 * TOKEN, 0, 40 * TOKEN)

    assert services.unbonding_release_due(now=unbonding.releases_at) == 1
    assert services.unbonding_release_due(now=unbonding.releases_at + timedelta(days=1)) == 0
    assert balances(funded_expert) == (100 * TOKEN, 0, 0)
    unbonding.refresh_from_db()
    assert unbonding.state == Unbonding.State.RELEASED
    # A new cooldown may start once the last one is released.
    services.stake_bond(expert=funded_expert, amount=10 * TOKEN)
    services.stake_unbond(expert=funded_expert, amount=10 * TOKEN)


def test_release_periodic_task_runs_the_service(funded_expert, settings):
    settings.DATADAO_UNBONDING_DAYS = 0  # due at once
    services.stake_bond(expert=funded_expert, amount=40 * TOKEN)
    services.stake_unbond(expert=funded_expert, amount=40 * TOKEN)

    assert unbonding_release_due.delay().get() == 1
    assert balances(funded_expert) == (100 * TOKEN, 0, 0)


def test_slash_takes_the_fraction_of_bonded_and_unbonding_stake_once(funded_expert):
    services.stake_bond(expert=funded_expert, amount=60 * TOKEN)
    unbonding = services.stake_unbond(expert=funded_expert, amount=20 * TOKEN)  # 40 bonded, 20 cooling

    slash = services.stake_slash(expert=funded_expert, fraction=0.1, key="fraud:1", reason="fraud upheld")
    again = services.stake_slash(expert=funded_expert, fraction=0.1, key="fraud:1", reason="fraud upheld")

    assert again.pk == slash.pk
    assert (slash.bonded_amount, slash.unbonding_amount) == (4 * TOKEN, 2 * TOKEN)
    assert balances(funded_expert) == (40 * TOKEN, 36 * TOKEN, 18 * TOKEN)
    assert treasury() == 6 * TOKEN
    # The cooldown releases what is left after the slash.
    services.unbonding_release_due(now=unbonding.releases_at)
    assert balances(funded_expert) == (58 * TOKEN, 36 * TOKEN, 0)
    assert ledger_differences() == []


def test_slash_fraction_is_exact_and_rounds_down(funded_expert, settings):
    settings.DATADAO_MIN_STAKE = 1
    services.stake_bond(expert=funded_expert, amount=33)
    slash = services.stake_slash(expert=funded_expert, fraction=0.1, key="k", reason="gold")
    assert slash.bonded_amount == 3  # floor(33 / 10), never 3.3000000000000003 -> 4
    assert balances(funded_expert) == (100 * TOKEN - 33, 30, 0)  # available is never slashed


def test_slash_reversal_restores_stake_to_where_it_was(funded_expert):
    services.stake_bond(expert=funded_expert, amount=60 * TOKEN)
    unbonding = services.stake_unbond(expert=funded_expert, amount=20 * TOKEN)
    slash = services.stake_slash(expert=funded_expert, fraction=0.5, key="k", reason="gold")
    moderator = factories.rewards_moderator()

    services.transaction_reverse(original=slash.transaction, actor=moderator)

    assert balances(funded_expert) == (40 * TOKEN, 40 * TOKEN, 20 * TOKEN)
    assert treasury() == 0
    unbonding.refresh_from_db()
    assert unbonding.remaining == 20 * TOKEN
    assert ledger_differences() == []


def test_slash_reversal_after_the_cooldown_ended_releases_the_restored_part(funded_expert):
    services.stake_bond(expert=funded_expert, amount=20 * TOKEN)
    unbonding = services.stake_unbond(expert=funded_expert, amount=20 * TOKEN)
    slash = services.stake_slash(expert=funded_expert, fraction=0.5, key="k", reason="gold")
    services.unbonding_release_due(now=unbonding.releases_at)
    assert balances(funded_expert) == (90 * TOKEN, 0, 0)

    services.slash_reverse(slash=slash)

    assert balances(funded_expert) == (100 * TOKEN, 0, 0)
    assert ledger_differences() == []


def test_only_moderators_reverse_transactions(funded_expert):
    services.stake_bond(expert=funded_expert, amount=20 * TOKEN)
    slash = services.stake_slash(expert=funded_expert, fraction=0.5, key="k", reason="gold")
    with pytest.raises(ServiceError) as exc:
        services.transaction_reverse(original=slash.transaction, actor=funded_expert.user)
    assert exc.value.status == 403
    assert not LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.REVERSAL).exists()


# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------


def test_stake_api_bonds_for_the_calling_expert(expert_client, funded_expert):
    response = expert_client.post("/api/v1/me/stake", {"amount": 25 * TOKEN}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["balances"] == {
        "available": 75 * TOKEN, "bonded": 25 * TOKEN, "unbonding": 0, "unbonding_releases_at": None,
    }


def test_stake_api_explains_an_insufficient_balance(expert_client, funded_expert):
    response = expert_client.post("/api/v1/me/stake", {"amount": 500 * TOKEN}, format="json")

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "amount" and "insufficient balance" in error["message"]


def test_stake_api_replays_an_idempotency_key(expert_client, funded_expert):
    for _ in range(2):
        response = expert_client.post(
            "/api/v1/me/stake", {"amount": 10 * TOKEN}, format="json", HTTP_IDEMPOTENCY_KEY="click-1",
        )
    assert response.status_code == 200
    assert balances(funded_expert) == (90 * TOKEN, 10 * TOKEN, 0)
    # A retry still answers with the first result after the balance has moved on.
    services.stake_bond(expert=funded_expert, amount=90 * TOKEN)
    retry = expert_client.post(
        "/api/v1/me/stake", {"amount": 10 * TOKEN}, format="json", HTTP_IDEMPOTENCY_KEY="click-1",
    )
    assert retry.status_code == 200
    assert retry.json()["transaction"] == response.json()["transaction"]


def test_unstake_api_twice_is_a_conflict(expert_client, funded_expert):
    services.stake_bond(expert=funded_expert, amount=30 * TOKEN)

    first = expert_client.post("/api/v1/me/unstake", {"amount": 10 * TOKEN}, format="json")
    second = expert_client.post("/api/v1/me/unstake", {"amount": 10 * TOKEN}, format="json")

    assert first.status_code == 201
    assert first.json()["unbonding"]["amount"] == 10 * TOKEN
    assert first.json()["balances"]["unbonding"] == 10 * TOKEN
    assert second.status_code == 409
    assert "already unbonding" in second.json()["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/api/v1/me/stake", "/api/v1/me/unstake"])
def test_only_experts_may_stake(lab_client, api_client, path):
    assert lab_client.post(path, {"amount": 1}, format="json").status_code == 403
    assert api_client.post(path, {"amount": 1}, format="json").status_code == 401


def test_stake_api_rejects_non_positive_and_fractional_amounts(expert_client, funded_expert):
    for amount in [0, -5, 1.5, "ten"]:
        response = expert_client.post("/api/v1/me/stake", {"amount": amount}, format="json")
        assert response.status_code == 400, amount
        assert response.json()["errors"][0]["field"] == "amount"
    assert balances(funded_expert) == (100 * TOKEN, 0, 0)


def test_suspended_experts_cannot_stake(funded_expert):
    funded_expert.state = Expert.State.SUSPENDED
    funded_expert.save()
    with pytest.raises(ServiceError) as exc:
        services.stake_bond(expert=funded_expert, amount=TOKEN)
    assert exc.value.status == 403
    assert Account.objects.get(expert=funded_expert, kind=Account.Kind.AVAILABLE).balance == 100 * TOKEN


def test_expert_deposit_is_for_moderators_and_counts_a_reference_once():
    expert = factories.ExpertFactory()
    moderator = factories.rewards_moderator()
    with pytest.raises(ServiceError, match="only moderators"):
        services.expert_deposit(expert=expert, amount=5, reference="inv-1", actor=expert.user)
    services.expert_deposit(expert=expert, amount=5_000_000, reference="inv-1", actor=moderator)
    services.expert_deposit(expert=expert, amount=5_000_000, reference="inv-1", actor=moderator)
    assert expert_balances(expert=expert).available == 5_000_000
    assert ledger_differences() == []
