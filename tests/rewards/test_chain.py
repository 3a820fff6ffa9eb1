"""Rewards on-chain: the Vyper token and cumulative distributor on an in-process chain (eth-tester).

An expert claims once for any number of settled epochs, a second claim pays
nothing, publishing is idempotent (a retry neither republishes nor mints
twice), only the treasury mints, publishes or pauses, and a paused
distributor pays nobody. The committed artifacts are what the sources
compile to; the claims indexer moves exactly what wallets claimed into the
ledger, once; a dispute claw-back never takes a claimed reward from the
expert's own tokens, and takes what still awaits claim off the next root
(never below what the address claimed); the wallet page offers the browser
wallet's claim.
"""
from __future__ import annotations

import io
import json
import sys
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

_RECURSION_LIMIT = sys.getrecursionlimit()
from eth_tester.exceptions import TransactionFailed  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.exceptions import ContractLogicError  # noqa: E402

from moderation import services as disputes  # noqa: E402
from annotations.handles import rater_handle  # noqa: E402
from rewards import chain as onchain  # noqa: E402
from rewards import corrections, ledger, services, settlement, tasks  # noqa: E402
from rewards.models import (  # noqa: E402
    Account, ChainClaim, ChainCursor, ClaimAdjustment, Epoch, EpochClaim, EpochReward, LedgerTransaction,
)
from rewards.selectors import expert_balances, ledger_differences  # noqa: E402
from tests import factories  # noqa: E402

# py-evm (eth-tester's chain) raises the interpreter's recursion limit when imported; the rest of the
# suite runs with the usual one. The contracts here call no deeper than a few frames.
sys.setrecursionlimit(_RECURSION_LIMIT)

pytestmark = pytest.mark.django_db
REVERTED = (ContractLogicError, TransactionFailed)


@pytest.fixture(scope="module")
def w3():
    provider = Web3(Web3.EthereumTesterProvider())
    sys.setrecursionlimit(_RECURSION_LIMIT)  # the chain loads py-evm only now
    return provider


@pytest.fixture
def deployed(w3):
    treasury = w3.eth.accounts[0]
    return onchain.deploy(w3, treasury=treasury)


def settle(campaign, index: int, payouts: dict[str, int]) -> Epoch:
    epoch = factories.EpochFactory(campaign=campaign, index=index, state=Epoch.State.SETTLED)
    for k, (address, amount) in enumerate(sorted(payouts.items())):
        EpochClaim.objects.create(epoch=epoch, address=address, index=k, amount=amount, proof=b"")
    return epoch


def claim(w3, chain, address: str) -> int:
    """The expert sends the ready calldata from their wallet; returns the tokens received."""
    info = onchain.claim_for(address, chain)
    before = chain.token.functions.balanceOf(address).call()
    tx = w3.eth.send_transaction({"from": address, "to": chain.distributor.address, "data": info["calldata"]})
    w3.eth.wait_for_transaction_receipt(tx)
    return chain.token.functions.balanceOf(address).call() - before


def test_one_claim_covers_every_settled_epoch_and_a_second_pays_nothing(w3, deployed):
    alice, bob = w3.eth.accounts[1], w3.eth.accounts[2]
    campaign = factories.CampaignFactory()
    settle(campaign, 0, {alice: 300, bob: 100})
    settle(campaign, 1, {alice: 200})
    factories.EpochFactory(campaign=campaign, index=2)  # open: not counted
    assert onchain.publish_root(deployed)["published"]
    assert claim(w3, deployed, alice) == 500
    with pytest.raises(REVERTED):
        claim(w3, deployed, alice)  # nothing left
    assert onchain.claim_for(alice, deployed)["claimed_on_chain"] == 500

    settle(campaign, 2 + 1, {alice: 50, bob: 25})  # a later epoch: the new root carries the totals
    result = onchain.publish_root(deployed)
    assert result["published"] and result["total"] == 675 and result["minted"] == 75
    assert claim(w3, deployed, alice) == 50
    assert claim(w3, deployed, bob) == 125
    assert deployed.token.functions.balanceOf(deployed.distributor.address).call() == 0


def test_publishing_twice_neither_republishes_nor_mints_twice(w3, deployed):
    alice = w3.eth.accounts[3]
    settle(factories.CampaignFactory(), 0, {alice: 1_000})
    first = onchain.publish_root(deployed)
    supply = deployed.token.functions.totalSupply().call()
    again = onchain.publish_root(deployed)
    assert first["published"] and not again["published"] and again["reason"] == "root already on chain"
    assert deployed.token.functions.totalSupply().call() == supply == 1_000
    assert deployed.distributor.functions.root().call().hex() == first["root"][2:]


def test_a_retry_after_a_crash_between_mint_and_root_mints_nothing_more(w3, deployed):
    alice = w3.eth.accounts[4]
    settle(factories.CampaignFactory(), 0, {alice: 700})
    deployed.send(deployed.token.functions.mint(deployed.distributor.address, 700))  # minted, then the job died
    result = onchain.publish_root(deployed)
    assert result["published"] and result["minted"] == 0
    assert deployed.token.functions.totalSupply().call() == 700
    assert claim(w3, deployed, alice) == 700


def test_only_the_treasury_mints_publishes_and_pauses_and_pause_stops_claims(w3, deployed):
    alice, mallory = w3.eth.accounts[5], w3.eth.accounts[6]
    settle(factories.CampaignFactory(), 0, {alice: 10})
    onchain.publish_root(deployed)
    for call in (deployed.token.functions.mint(mallory, 1),
                 deployed.distributor.functions.update_root(b"\x01" * 32, 10**9),
                 deployed.distributor.functions.set_paused(True)):
        with pytest.raises(REVERTED):
            call.transact({"from": mallory})
    deployed.send(deployed.distributor.functions.set_paused(True))
    with pytest.raises(REVERTED):
        claim(w3, deployed, alice)
    deployed.send(deployed.distributor.functions.set_paused(False))
    assert claim(w3, deployed, alice) == 10


def test_a_forged_amount_or_proof_is_refused(w3, deployed):
    alice, bob = w3.eth.accounts[7], w3.eth.accounts[8]
    settle(factories.CampaignFactory(), 0, {alice: 10, bob: 20})
    onchain.publish_root(deployed)
    info = onchain.claim_for(alice, deployed)
    proof = [bytes.fromhex(p[2:]) for p in info["proof"]]
    with pytest.raises(REVERTED):  # claims bob's larger amount with alice's proof
        deployed.distributor.functions.claim(info["index"], alice, 20, proof).transact({"from": alice})


def test_without_a_chain_the_claim_is_still_ready_for_a_wallet(settings):
    settings.CHAIN_RPC_URL = ""
    assert onchain.connect() is None
    address = "0x" + "ab" * 20
    settle(factories.CampaignFactory(), 0, {Web3.to_checksum_address(address): 42})
    info = onchain.claim_for(address)
    assert info["cumulative"] == 42 and info["claimed_on_chain"] is None
    assert info["calldata"].startswith("0x") and len(info["proof"]) == 0
    assert onchain.claim_for("0x" + "cd" * 20) is None


def test_the_api_serves_the_cumulative_claim_to_anyone(client):
    address = "0x" + "ef" * 20
    campaign = factories.CampaignFactory()
    settle(campaign, 0, {Web3.to_checksum_address(address): 5})
    settle(campaign, 1, {Web3.to_checksum_address(address): 7})
    body = client.get(f"/api/v1/claims/{address}").json()
    assert body["cumulative"] == 12 and body["claimed_on_chain"] is None and body["calldata"].startswith("0x")
    missing = client.get("/api/v1/claims/" + "0x" + "12" * 20)
    assert missing.status_code == 404 and missing.json()["errors"][0]["message"] == "no earnings for this address."


# --------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------


def test_the_committed_artifacts_are_what_the_sources_compile_to():
    from rewards.management.commands.contracts_build import build

    for name in onchain.CONTRACTS:
        committed = json.loads(onchain.artifact_path(name).read_text())
        fresh = build(name)
        assert committed["source_sha256"] == fresh["source_sha256"], f"{name}.vy changed: run manage.py contracts_build"
        assert committed["abi"] == fresh["abi"] and committed["bytecode"] == fresh["bytecode"], name
        assert committed["vyper_version"] == fresh["vyper_version"]


def test_the_claims_endpoint_works_without_the_compiler(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "vyper", None)  # import vyper now fails
    onchain.compiled.cache_clear()
    address = "0x" + "9a" * 20
    settle(factories.CampaignFactory(), 0, {Web3.to_checksum_address(address): 3})
    try:
        body = client.get(f"/api/v1/claims/{address}").json()
    finally:
        onchain.compiled.cache_clear()
    assert body["cumulative"] == 3 and body["calldata"].startswith("0x")


# --------------------------------------------------------------------------
# Indexing Claimed events into the ledger
# --------------------------------------------------------------------------

TOKEN = 1_000_000


def settled_campaign(experts, *, tasks_n: int = 12) -> tuple[object, dict[int, list]]:
    """A funded campaign whose experts all ranked the same tasks the same way, settled for real."""
    campaign = factories.CampaignFactory(reward_per_judgment=TOKEN)
    factories.lab_deposit(campaign.lab, 100 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=100 * TOKEN, actor=None)
    at = timezone.now() - timedelta(days=3)
    task_rows = [factories.TaskFactory(campaign=campaign) for _ in range(tasks_n)]
    judgments = {e.pk: [factories.rated_judgment(task=t, expert=e, ranks=[1, 2] if k % 2 else [2, 1], submitted_at=at)
                        for k, t in enumerate(task_rows)]
                 for e in experts}
    settlement.epoch_settle(epoch_id=factories.EpochFactory(campaign=campaign, index=0).pk)
    return campaign, judgments


def reward_of(expert, campaign) -> int:
    return EpochReward.objects.get(expert=expert, epoch__campaign=campaign).amount


def claimed_account(expert) -> int:
    return Account.objects.filter(kind=Account.Kind.CLAIMED, expert=expert).values_list("balance", flat=True).first() or 0


def claim_with_api(client, w3, chain, address: str) -> int:
    """The wallet sends the calldata GET /api/v1/claims/{address} prepared; returns the tokens received."""
    body = client.get(f"/api/v1/claims/{address}").json()
    assert body["distributor"] == chain.distributor.address
    before = chain.token.functions.balanceOf(address).call()
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": address, "to": body["distributor"], "data": body["calldata"]}))
    return chain.token.functions.balanceOf(address).call() - before


@pytest.fixture
def jobs(deployed, monkeypatch, settings):
    """The beat jobs, talking to the test chain (configured: claw-backs off a leaf wait for the next root)."""
    settings.CHAIN_RPC_URL = "http://chain.invalid"
    monkeypatch.setattr(onchain, "connect", lambda: deployed)
    return tasks


def test_the_indexer_moves_exactly_what_wallets_claimed_once_and_resumes(client, w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[1])
    bob = factories.ExpertFactory(wallet_address=w3.eth.accounts[2])
    carol = factories.ExpertFactory()  # no wallet: paid in-platform, nothing on-chain
    stranger = w3.eth.accounts[9]  # an address of no expert of ours
    first, _ = settled_campaign([alice, bob, carol])
    settle(factories.CampaignFactory(), 0, {stranger: 7})
    assert jobs.chain_publish_root()["published"]

    got_alice = claim_with_api(client, w3, deployed, alice.wallet_address)
    got_stranger = claim_with_api(client, w3, deployed, stranger)
    assert got_alice == reward_of(alice, first) > 0 and got_stranger == 7
    external_before = Account.objects.get(kind=Account.Kind.EXTERNAL).balance

    result = jobs.chain_index_claims()

    assert (result["events"], result["indexed"], result["skipped"]) == (2, 1, 1)
    assert result["to_block"] == w3.eth.block_number
    assert claimed_account(alice) == got_alice and claimed_account(bob) == 0 and claimed_account(carol) == 0
    assert Account.objects.get(kind=Account.Kind.EXTERNAL).balance == external_before - got_alice
    assert expert_balances(expert=alice).available == 0  # the claim was never spendable here
    assert ledger_differences() == []
    cursor = ChainCursor.objects.get()

    transactions = LedgerTransaction.objects.count()
    again = jobs.chain_index_claims()
    assert again["events"] == 0 and LedgerTransaction.objects.count() == transactions
    assert ChainCursor.objects.get().last_block == cursor.last_block

    # A later epoch: the new root carries the totals; alice claims the rest, bob everything.
    second, _ = settled_campaign([alice, bob])
    jobs.chain_publish_root()
    got_alice_2 = claim_with_api(client, w3, deployed, alice.wallet_address)
    got_bob = claim_with_api(client, w3, deployed, bob.wallet_address)
    assert got_alice_2 == reward_of(alice, second) and got_bob == reward_of(bob, first) + reward_of(bob, second)

    resumed = jobs.chain_index_claims()

    assert resumed["from_block"] == cursor.last_block + 1 and resumed["indexed"] == 2
    assert claimed_account(alice) == got_alice + got_alice_2 and claimed_account(bob) == got_bob
    assert sorted(ChainClaim.objects.values_list("address", "amount")) == sorted(
        [(alice.wallet_address, got_alice), (alice.wallet_address, got_alice_2), (bob.wallet_address, got_bob)])
    claimed_txs = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.CLAIMED)
    assert claimed_txs.count() == 3
    assert ledger_differences() == []

    # A crash after the postings but before the cursor moved is a rollback: rewinding the cursor
    # by hand (a re-index) finds every event already posted.
    ChainCursor.objects.update(last_block=-1)
    transactions = LedgerTransaction.objects.count()
    rerun = jobs.chain_index_claims()
    assert rerun["events"] == 4 and rerun["indexed"] == 0 and LedgerTransaction.objects.count() == transactions
    assert claimed_account(alice) == got_alice + got_alice_2 and claimed_account(bob) == got_bob


def test_the_indexer_waits_for_confirmations(w3, deployed, jobs, settings):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[3])
    settled_campaign([alice, factories.ExpertFactory()])
    jobs.chain_publish_root()
    claim(w3, deployed, alice.wallet_address)
    settings.CHAIN_CONFIRMATIONS = 1_000_000  # deeper than the chain: nothing is final yet
    assert jobs.chain_index_claims()["events"] == 0 and claimed_account(alice) == 0
    settings.CHAIN_CONFIRMATIONS = 0
    assert jobs.chain_index_claims()["indexed"] == 1 and claimed_account(alice) > 0


# --------------------------------------------------------------------------
# Dispute claw-back of a reward claimed on-chain
# --------------------------------------------------------------------------


def test_a_claw_back_never_takes_a_claimed_reward_from_the_experts_own_tokens(client, w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[4])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    factories.expert_deposit(alice, 10 * TOKEN)
    services.stake_bond(expert=alice, amount=4 * TOKEN)
    judgment = judgments[alice.pk][0]
    per_judgment = reward_of(alice, campaign) // len(judgments[alice.pk])
    jobs.chain_publish_root()

    before_claim = corrections.judgment_reward_share(judgment)
    assert before_claim.claimed == per_judgment and before_claim.claimed_on_chain == 0  # still in the distributor

    claim_with_api(client, w3, deployed, alice.wallet_address)
    jobs.chain_index_claims()
    outcome = corrections.judgment_reward_claw_back(
        judgment=judgment, key_prefix="dispute:0:clawback", moderator=None, memo="test claw-back")

    assert outcome["clawed_back"] == 0
    assert outcome["not_recovered"] == per_judgment
    assert outcome["claimed_on_chain"] == per_judgment and outcome["awaiting_claim"] == 0
    balances = expert_balances(expert=alice)
    assert (balances.available, balances.bonded) == (6 * TOKEN, 4 * TOKEN)  # deposit and stake untouched
    assert ledger_differences() == []


def overturn_lab_dispute(judgment, moderator):
    """A member of the campaign's lab disputes the judgment; a moderator overturns it (voided, clawed back)."""
    cache.clear()  # the dispute throttle
    dispute, _ = disputes.dispute_open_lab(
        user=factories.lab_member(judgment.campaign.lab), campaign_id=judgment.campaign_id,
        task_external_id=judgment.task.external_id, rater=rater_handle(judgment.campaign_id, judgment.expert_id),
        statement="The rationale contradicts the ranking it explains; please look again.")
    return disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned",
                                    reason="Checked the evidence against the guidelines.")


def test_a_claw_back_before_the_claim_lowers_the_next_root_and_the_claim_pays_less(client, w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[6])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    factories.expert_deposit(alice, 10 * TOKEN)
    services.stake_bond(expert=alice, amount=4 * TOKEN)
    earned = reward_of(alice, campaign)
    per_judgment = earned // len(judgments[alice.pk])
    first = jobs.chain_publish_root()
    assert client.get(f"/api/v1/claims/{alice.wallet_address}").json()["cumulative"] == earned
    escrow_before = ledger.escrow_account(campaign).balance
    external_before = Account.objects.get(kind=Account.Kind.EXTERNAL).balance
    moderator = factories.rewards_moderator()

    dispute = overturn_lab_dispute(judgments[alice.pk][0], moderator)

    # The old root is still on chain: nothing is credited to the escrow until the lower one is.
    outcome = dispute.outcome
    assert outcome["pending_root"] == per_judgment > 0 and outcome["clawed_back"] == 0
    assert outcome["awaiting_claim"] == per_judgment and outcome["claimed_on_chain"] == 0
    assert "not_recovered" not in outcome and "from_claim" not in outcome
    key = f"dispute:{dispute.pk}:clawback:root:judgment:{judgments[alice.pk][0].pk}"
    assert not LedgerTransaction.objects.filter(idempotency_key=key).exists()
    assert ClaimAdjustment.objects.get(key=key).state == ClaimAdjustment.State.PENDING
    assert ledger.escrow_account(campaign).balance == escrow_before
    transactions = LedgerTransaction.objects.count()
    overturn_again = corrections.judgment_reward_claw_back(  # the same dispute resolved twice: moves nothing more
        judgment=judgments[alice.pk][0], key_prefix=f"dispute:{dispute.pk}:clawback", moderator=moderator, memo="x")
    assert overturn_again["pending_root"] == per_judgment and ClaimAdjustment.objects.count() == 1
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned",
                             reason="Checked the evidence against the guidelines.")
    assert LedgerTransaction.objects.count() == transactions and ClaimAdjustment.objects.count() == 1

    supply = deployed.token.functions.totalSupply().call()
    second = jobs.chain_publish_root()

    assert second["published"] and second["root"] != first["root"] and second["minted"] == 0
    assert second["total"] == first["total"] - per_judgment and "not_recovered" not in second
    assert second["adjustments"] == [
        {"key": key, "address": alice.wallet_address, "recovered": per_judgment, "not_recovered": 0}]
    posting = LedgerTransaction.objects.get(idempotency_key=key)
    assert sorted(posting.entries.values_list("account__kind", "amount")) == [
        ("escrow", per_judgment), ("external", -per_judgment)]
    assert ledger.escrow_account(campaign).balance == escrow_before + per_judgment
    assert Account.objects.get(kind=Account.Kind.EXTERNAL).balance == external_before - per_judgment
    adjustment = ClaimAdjustment.objects.get(key=key)
    assert (adjustment.state, adjustment.recovered, adjustment.not_recovered, adjustment.root) == (
        ClaimAdjustment.State.APPLIED, per_judgment, 0, second["root"])
    assert deployed.token.functions.totalSupply().call() == supply  # nothing minted
    assert client.get(f"/api/v1/claims/{alice.wallet_address}").json()["cumulative"] == earned - per_judgment
    transactions = LedgerTransaction.objects.count()
    assert jobs.chain_publish_root() == {"published": False, "reason": "root already on chain", "root": second["root"]}
    assert LedgerTransaction.objects.count() == transactions  # a rerun posts nothing
    assert corrections.judgment_reward_claw_back(  # resolved again after the root: reports what it recovered
        judgment=judgments[alice.pk][0], key_prefix=f"dispute:{dispute.pk}:clawback", moderator=moderator,
        memo="x")["from_claim"] == per_judgment
    assert LedgerTransaction.objects.count() == transactions
    assert claim_with_api(client, w3, deployed, alice.wallet_address) == earned - per_judgment
    balances = expert_balances(expert=alice)
    assert (balances.available, balances.bonded) == (6 * TOKEN, 4 * TOKEN)  # deposit and stake untouched
    jobs.chain_index_claims()
    assert claimed_account(alice) == earned - per_judgment
    assert ledger_differences() == []


def test_a_rerun_after_a_crash_once_the_lower_root_is_on_chain_applies_the_claw_back_once(w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[9])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    per_judgment = reward_of(alice, campaign) // len(judgments[alice.pk])
    jobs.chain_publish_root()
    escrow_before = ledger.escrow_account(campaign).balance
    outcome = overturn_lab_dispute(judgments[alice.pk][0], factories.rewards_moderator()).outcome
    assert outcome["pending_root"] == per_judgment
    # The job put the lower root on chain, then died before its database transaction committed.
    lower = onchain.cumulative_distribution()
    deployed.send(deployed.distributor.functions.update_root(bytes.fromhex(lower.root[2:]), lower.token_total))

    rerun = jobs.chain_publish_root()

    assert rerun["reason"] == "root already on chain" and rerun["adjustments"][0]["recovered"] == per_judgment
    assert ledger.escrow_account(campaign).balance == escrow_before + per_judgment
    transactions = LedgerTransaction.objects.count()
    assert "adjustments" not in jobs.chain_publish_root() and LedgerTransaction.objects.count() == transactions
    assert ledger_differences() == []


def test_a_claw_back_after_the_expert_claimed_everything_recovers_nothing_and_keeps_the_root(
        client, w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[7])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    earned = reward_of(alice, campaign)
    per_judgment = earned // len(judgments[alice.pk])
    first = jobs.chain_publish_root()
    assert claim_with_api(client, w3, deployed, alice.wallet_address) == earned
    jobs.chain_index_claims()

    outcome = overturn_lab_dispute(judgments[alice.pk][0], factories.rewards_moderator()).outcome

    assert outcome["clawed_back"] == 0 and "from_claim" not in outcome
    assert outcome["not_recovered"] == outcome["claimed_on_chain"] == per_judgment
    assert not LedgerTransaction.objects.filter(idempotency_key__contains=":clawback:root:").exists()
    assert onchain.cumulative_earnings([alice.wallet_address]) == {alice.wallet_address: earned}
    assert jobs.chain_publish_root() == {"published": False, "reason": "root already on chain", "root": first["root"]}


def test_a_judgment_restored_before_the_lower_root_cancels_its_claw_back_and_pays_nothing_twice(w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[2])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    earned = reward_of(alice, campaign)
    first = jobs.chain_publish_root()
    moderator = factories.rewards_moderator()
    dispute = overturn_lab_dispute(judgments[alice.pk][0], moderator)
    assert onchain.cumulative_earnings([alice.wallet_address])[alice.wallet_address] < earned

    restored = corrections.judgment_reward_restore(judgment=judgments[alice.pk][0], dispute_id=dispute.pk,
                                                   moderator=moderator)

    assert restored == {} and expert_balances(expert=alice).available == 0  # the leaf keeps it: nothing paid here
    assert ClaimAdjustment.objects.get().state == ClaimAdjustment.State.CANCELLED
    assert onchain.cumulative_earnings([alice.wallet_address]) == {alice.wallet_address: earned}
    assert jobs.chain_publish_root() == {"published": False, "reason": "root already on chain", "root": first["root"]}
    assert ledger_differences() == []


def test_a_claim_racing_the_claw_back_is_not_credited_to_the_escrow_and_reported_not_recovered(
        client, w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[8])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    earned = reward_of(alice, campaign)
    per_judgment = earned // len(judgments[alice.pk])
    first = jobs.chain_publish_root()
    old_claim = client.get(f"/api/v1/claims/{alice.wallet_address}").json()
    escrow_before = ledger.escrow_account(campaign).balance
    external_before = Account.objects.get(kind=Account.Kind.EXTERNAL).balance
    assert overturn_lab_dispute(judgments[alice.pk][0], factories.rewards_moderator()).outcome["pending_root"] > 0

    # The old root is still on chain: the wallet claims all of it, with the proof it fetched before the
    # claw-back, before the lower root is published.
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": alice.wallet_address, "to": deployed.distributor.address, "data": old_claim["calldata"]}))
    assert deployed.distributor.functions.claimed(alice.wallet_address).call() == earned
    waiting = jobs.chain_publish_root()
    assert not waiting["published"] and waiting["reason"] == f"claims not indexed yet for {alice.wallet_address}"

    jobs.chain_index_claims()
    after = jobs.chain_publish_root()

    assert after["root"] == first["root"] and after["not_recovered"] == {alice.wallet_address: per_judgment}
    assert after["adjustments"][0]["recovered"] == 0
    adjustment = ClaimAdjustment.objects.get()
    assert (adjustment.state, adjustment.recovered, adjustment.not_recovered, adjustment.transaction) == (
        ClaimAdjustment.State.APPLIED, 0, per_judgment, None)
    # The tokens the wallet took are counted once: as claimed, never also as back in the escrow.
    assert ledger.escrow_account(campaign).balance == escrow_before
    assert Account.objects.get(kind=Account.Kind.EXTERNAL).balance == external_before - earned
    assert claimed_account(alice) == earned
    assert not LedgerTransaction.objects.filter(idempotency_key__contains=":clawback:root:").exists()
    assert onchain.cumulative_earnings([alice.wallet_address]) == {alice.wallet_address: earned}
    assert jobs.chain_publish_root() == {"published": False, "reason": "root already on chain", "root": first["root"]}
    assert ledger_differences() == []
    call_command("ledger_reconcile", stdout=io.StringIO())  # exits non-zero on a difference


def test_the_leaf_never_drops_below_what_the_address_claimed_and_the_shortfall_is_reported():
    leaves, short = onchain.cumulative_leaves({"0xA": 1_000, "0xB": 500, "0xC": 300},
                                              {"0xA": -200, "0xB": -100, "0xC": -300}, {"0xA": 900, "0xB": 100})
    assert leaves == {"0xA": 900, "0xB": 400}  # 0xA claimed 900 before the root was lowered (a race)
    assert short == {"0xA": 100}
    assert corrections.root_claw_back_amount(awaiting=50, leaf=1_000, claimed=980) == 20
    assert corrections.root_claw_back_amount(awaiting=50, leaf=1_000, claimed=1_000) == 0
    assert corrections.root_claw_back_amount(awaiting=50, leaf=1_000, claimed=0) == 50


# --------------------------------------------------------------------------
# The wallet page
# --------------------------------------------------------------------------


def test_the_wallet_page_shows_each_address_claim_and_the_wallet_button(client, w3, deployed, jobs, settings):
    settings.CHAIN_RPC_URL = "http://chain.invalid"
    settings.CHAIN_DISTRIBUTOR_ADDRESS = deployed.distributor.address
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[5])
    first, _ = settled_campaign([alice, factories.ExpertFactory()])
    jobs.chain_publish_root()
    claim_with_api(client, w3, deployed, alice.wallet_address)
    jobs.chain_index_claims()
    second, _ = settled_campaign([alice, factories.ExpertFactory()])
    client.force_login(alice.user)

    response = client.get("/wallet/")
    page = response.content.decode()

    row = page[page.index('id="onchain-claims"'):]
    row = row[:row.index("</table>")]
    earned = reward_of(alice, first) + reward_of(alice, second)
    assert alice.wallet_address in row
    assert row.count("DDF") == 3  # earned, claimed, left
    from rewards.amounts import format_amount
    assert format_amount(earned) in row and format_amount(reward_of(alice, first)) in row
    assert format_amount(reward_of(alice, second)) in row
    # The button waits, hidden, for a browser wallet; its script is a static file (the CSP allows no inline one).
    assert 'class="claim-with-wallet" hidden' in row and f'data-distributor="{deployed.distributor.address}"' in row
    assert f'data-claim-url="/api/v1/claims/{alice.wallet_address}"' in row
    assert '<script src="/static/rewards/claim.js"' in page and "script-src 'self'" in response["Content-Security-Policy"]

    settings.CHAIN_RPC_URL = ""  # no chain: figures shown, no button
    page = client.get("/wallet/").content.decode()
    assert "claim-with-wallet" not in page and "claim.js" not in page and format_amount(earned) in page


def test_a_moderator_reads_claims_cursors_and_claw_backs_in_admin(client, w3, deployed, jobs):
    alice = factories.ExpertFactory(wallet_address=w3.eth.accounts[6])
    campaign, judgments = settled_campaign([alice, factories.ExpertFactory()])
    jobs.chain_publish_root()
    overturn_lab_dispute(judgments[alice.pk][0], factories.rewards_moderator())  # pending until the next root
    jobs.chain_publish_root()  # the lower root: the claw-back applied
    claim_with_api(client, w3, deployed, alice.wallet_address)
    jobs.chain_index_claims()
    client.force_login(factories.rewards_moderator())

    claims = client.get("/admin/rewards/chainclaim/")
    assert claims.status_code == 200 and alice.wallet_address in claims.content.decode()
    cursors = client.get("/admin/rewards/chaincursor/")
    assert cursors.status_code == 200 and str(ChainCursor.objects.get().last_block) in cursors.content.decode()
    adjustments = client.get("/admin/rewards/claimadjustment/")
    page = adjustments.content.decode()
    assert adjustments.status_code == 200 and alice.wallet_address in page
    assert "not recovered (claimed first)" in page.lower()
    # Read-only: nothing to add or change by hand.
    assert client.get("/admin/rewards/claimadjustment/add/").status_code == 403
