"""Rewards on-chain: the Vyper token and cumulative distributor on an in-process chain (eth-tester).

An expert claims once for any number of settled epochs, a second claim pays
nothing, publishing is idempotent (a retry neither republishes nor mints
twice), only the treasury mints, publishes or pauses, and a paused
distributor pays nobody.
"""
from __future__ import annotations

import sys

import pytest

_RECURSION_LIMIT = sys.getrecursionlimit()
from eth_tester.exceptions import TransactionFailed  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.exceptions import ContractLogicError  # noqa: E402

from rewards import chain as onchain  # noqa: E402
from rewards.models import Epoch, EpochClaim  # noqa: E402
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
