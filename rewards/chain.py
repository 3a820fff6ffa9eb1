"""Rewards on-chain: the DAO token and a cumulative Merkle distributor (``contracts/``).

Off by default. With ``CHAIN_RPC_URL`` empty, rewards stay in the platform's
ledger and every epoch's Merkle root is published by the API only, as
before. With it set (and ``CHAIN_TREASURY_KEY``, ``CHAIN_TOKEN_ADDRESS``,
``CHAIN_DISTRIBUTOR_ADDRESS`` in the environment: the signer never touches
the database), :func:`publish_root` puts one root on the distributor:

- each leaf is an address's *cumulative* earnings over every settled epoch
  (the sum of its ``EpochClaim`` rows, less what disputes clawed back from
  it before it was claimed: its ``ClaimAdjustment`` rows, never below what
  it already claimed on-chain; a pending row is applied, its recovered part
  posted to the escrow, once the root holding it is on chain), encoded as each epoch's leaves are
  (``rewards.merkle``), so one claim covers any number of epochs and the
  contract pays the cumulative amount less what the address already
  claimed: a double claim pays nothing by construction;
- the job reads the contract first: a root already there is not published
  again, and it mints to the distributor only what the new total owes beyond
  what the distributor holds and has paid, so a retry after a crash between
  the two transactions mints nothing twice.

:func:`claim_for` gives an address what a wallet needs to claim: the
cumulative amount, the proof, the ready calldata and, when a chain is
configured, what the address has already claimed on-chain.

The contracts' ABI and bytecode come from the committed artifacts
(``contracts/build/<name>.json``, written by ``manage.py contracts_build``),
never from the compiler at run time. ``rewards.chain_claims`` indexes the
distributor's ``Claimed`` events into the ledger.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Case, F, Sum, When

from rewards.merkle import Distribution, build_distribution
from rewards.models import ChainClaim, ClaimAdjustment, Epoch, EpochClaim

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
ARTIFACTS_DIR = CONTRACTS_DIR / "build"
CONTRACTS = ("DaoToken", "CumulativeDistributor")


def artifact_path(name: str) -> Path:
    return ARTIFACTS_DIR / f"{name}.json"


@lru_cache(maxsize=None)
def compiled(name: str) -> tuple[list[dict[str, Any]], str]:
    """(abi, bytecode) of ``contracts/<name>.vy`` from its committed artifact (``manage.py contracts_build``
    writes it; a test fails when it is stale), so no process here needs the Vyper compiler."""
    body = json.loads(artifact_path(name).read_text())
    return body["abi"], body["bytecode"]


def cumulative_leaves(earned: dict[str, int], adjustments: dict[str, int],
                      claimed: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(leaves, not_recovered): each address's cumulative leaf, its settled earnings plus its adjustments
    (claw-backs are negative), never below what it already claimed on-chain, which the contract has paid;
    ``not_recovered`` is, per address the floor lifted, what a claw-back meant to take back but the wallet
    had claimed first. Addresses whose leaf is 0 are left out."""
    leaves: dict[str, int] = {}
    short: dict[str, int] = {}
    for address in sorted(set(earned) | set(adjustments)):
        wanted = earned.get(address, 0) + adjustments.get(address, 0)
        taken = claimed.get(address, 0)
        if wanted < taken:
            short[address] = taken - wanted
        leaf = max(wanted, taken)
        if leaf > 0:
            leaves[address] = leaf
    return leaves, short


def chain_configured() -> bool:
    """Whether rewards go on-chain (``CHAIN_RPC_URL`` set); without a chain no on-chain claim can race a
    claw-back, so ``rewards.corrections`` applies claim adjustments at once."""
    return bool(getattr(settings, "CHAIN_RPC_URL", ""))


def leaf_adjustment():
    """What a ``ClaimAdjustment`` row does to its leaf: a pending one its whole (negative) amount, an
    applied one what it recovered (its shortfall stays with the address: the wallet claimed it)."""
    return Case(When(state=ClaimAdjustment.State.APPLIED, then=-F("recovered")), default=F("amount"),
                output_field=BigIntegerField())


def _cumulative(addresses=None) -> tuple[dict[str, int], dict[str, int]]:
    claims = EpochClaim.objects.filter(epoch__state=Epoch.State.SETTLED)
    adjustments = ClaimAdjustment.objects.all()
    if addresses is not None:
        claims, adjustments = claims.filter(address__in=addresses), adjustments.filter(address__in=addresses)
    earned = dict(claims.values("address").annotate(total=Sum("amount")).order_by().values_list("address", "total"))
    adjusted = dict(adjustments.exclude(state=ClaimAdjustment.State.CANCELLED).values("address")
                    .annotate(total=Sum(leaf_adjustment())).order_by().values_list("address", "total"))
    claimed = dict(ChainClaim.objects.filter(address__in=list(adjusted)).values("address")
                   .annotate(total=Sum("amount")).order_by().values_list("address", "total")) if adjusted else {}
    return cumulative_leaves({a: int(t) for a, t in earned.items()}, {a: int(t) for a, t in adjusted.items()},
                             {a: int(t) for a, t in claimed.items()})


def cumulative_earnings(addresses=None) -> dict[str, int]:
    """Every address's cumulative leaf (or only ``addresses``'), in base units: its earnings over all
    settled epochs less what disputes clawed back from it (``ClaimAdjustment``), never below what it
    claimed on-chain as indexed."""
    return _cumulative(addresses)[0]


def cumulative_distribution() -> Distribution | None:
    earnings = cumulative_earnings()
    return build_distribution(earnings) if earnings else None


@dataclass
class Chain:
    """A connection, the treasury's signing account and the two contracts."""

    web3: Any
    treasury: str
    token: Any
    distributor: Any
    private_key: str | None = None  # None: the node holds the treasury's key (a test chain)

    def send(self, call) -> Any:
        """Send a contract call from the treasury and wait for its receipt (fails loudly if it reverted)."""
        w3 = self.web3
        if self.private_key is None:
            tx_hash = call.transact({"from": self.treasury})
        else:
            tx = call.build_transaction({"from": self.treasury, "nonce": w3.eth.get_transaction_count(self.treasury)})
            signed = w3.eth.account.sign_transaction(tx, self.private_key)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt


def _contract(w3, name: str, address: str):
    abi, _ = compiled(name)
    return w3.eth.contract(address=address, abi=abi)


def attach(w3, *, treasury: str, token: str, distributor: str, private_key: str | None = None) -> Chain:
    return Chain(w3, treasury, _contract(w3, "DaoToken", token), _contract(w3, "CumulativeDistributor", distributor),
                 private_key)


def deploy(w3, *, treasury: str, private_key: str | None = None, name: str = "DataDAO", symbol: str = "DAO",
           decimals: int = 6) -> Chain:
    """Deploy the token and the distributor with ``treasury`` as their treasury (tests, a new network)."""

    def create(contract_name: str, *args) -> str:
        abi, bytecode = compiled(contract_name)
        chain = Chain(w3, treasury, None, None, private_key)
        receipt = chain.send(w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args))
        return receipt["contractAddress"]

    token = create("DaoToken", name, symbol, decimals, treasury)
    distributor = create("CumulativeDistributor", token, treasury)
    return attach(w3, treasury=treasury, token=token, distributor=distributor, private_key=private_key)


def connect() -> Chain | None:
    """The configured chain, or None when rewards stay off-chain (``CHAIN_RPC_URL`` empty)."""
    url = getattr(settings, "CHAIN_RPC_URL", "")
    if not url:
        return None
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
    key = settings.CHAIN_TREASURY_KEY
    treasury = w3.eth.account.from_key(key).address
    return attach(w3, treasury=treasury, token=settings.CHAIN_TOKEN_ADDRESS,
                  distributor=settings.CHAIN_DISTRIBUTOR_ADDRESS, private_key=key)


def _root_bytes(root: str) -> bytes:
    return bytes.fromhex(root[2:] if root.startswith("0x") else root)


def publish_root(chain: Chain) -> dict[str, Any]:
    """Put the cumulative root of all settled epochs on the distributor, once; safe to run again.

    A root lower than the last (a dispute clawed back what an address had not claimed) is published
    too; it mints nothing then. It waits while an address a claw-back lowered has claimed on-chain more
    than the indexer recorded (its floor would be wrong): the next run, after the indexer, publishes.
    Once the root holding them is on chain (published now, or found there by a rerun after a crash),
    the pending claw-backs off leaves are applied (``rewards.chain_claims.claim_adjustments_apply``):
    each posts what its address had not claimed back to the escrow, once; ``not_recovered`` (address ->
    amount) is what wallets claimed with an older proof first."""
    from rewards.chain_claims import claim_adjustments_apply

    leaves, _ = _cumulative()
    if not leaves:
        return {"published": False, "reason": "nothing settled to an address yet"}
    dist = build_distribution(leaves)
    root = _root_bytes(dist.root)
    distributor, token = chain.distributor.functions, chain.token.functions
    if distributor.root().call() == root:
        return {"published": False, "reason": "root already on chain", "root": dist.root,
                **claim_adjustments_apply(chain, dist.root)}
    lowered = ClaimAdjustment.objects.values_list("address", flat=True).distinct()
    unindexed = sorted(a for a in lowered if distributor.claimed(a).call() > leaves.get(a, 0))
    if unindexed:
        return {"published": False, "reason": "claims not indexed yet for " + ", ".join(unindexed)}
    held = token.balanceOf(chain.distributor.address).call() + distributor.total_claimed().call()
    owed = dist.token_total - held
    if owed > 0:
        chain.send(token.mint(chain.distributor.address, owed))
    chain.send(distributor.update_root(root, dist.token_total))
    return {"published": True, "root": dist.root, "total": dist.token_total, "minted": max(owed, 0),
            **claim_adjustments_apply(chain, dist.root)}


def claim_for(address: str, chain: Chain | None = None) -> dict[str, Any] | None:
    """What ``address`` claims from the distributor (None if it has no earnings to an address)."""
    dist = cumulative_distribution()
    if dist is None:
        return None
    wanted = address.lower()
    for account, claim in dist.claims.items():
        if account.lower() == wanted:
            break
    else:
        return None
    proof = [_root_bytes(node) for node in claim["proof"]]
    abi, _ = compiled("CumulativeDistributor")
    if chain is not None:
        distributor = chain.distributor
    else:
        from web3 import Web3

        distributor = Web3().eth.contract(abi=abi)
    calldata = distributor.encode_abi("claim", args=[claim["index"], account, claim["amount"], proof])
    out: dict[str, Any] = {
        "address": account, "index": claim["index"], "cumulative": claim["amount"], "proof": claim["proof"],
        "root": dist.root, "calldata": calldata, "claimed_on_chain": None,
    }
    if chain is not None:
        out["claimed_on_chain"] = chain.distributor.functions.claimed(account).call()
        out["distributor"] = chain.distributor.address
    return out


def wallet_claims(addresses) -> list[dict[str, Any]]:
    """Per address: what it earned over every settled epoch less claw-backs (its cumulative leaf) and what
    it claimed on-chain, as indexed; addresses with neither are left out."""
    wanted = sorted(set(addresses))
    earned = cumulative_earnings(wanted)
    from rewards.chain_claims import claimed_by_address

    claimed = claimed_by_address(wanted)
    rows = []
    for address in wanted:
        cumulative, taken = int(earned.get(address) or 0), claimed[address]
        if cumulative or taken:
            rows.append({"address": address, "cumulative": cumulative, "claimed": taken,
                         "left": max(cumulative - taken, 0)})
    return rows
