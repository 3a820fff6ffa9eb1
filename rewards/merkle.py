"""Merkle distributions that a Uniswap merkle-distributor contract can verify.

Each epoch's payouts are published as one Merkle root plus, per recipient,
an index, an amount and a proof. An on-chain claim contract of the Uniswap
merkle-distributor kind stores only the root and checks a claim with

    node = keccak256(abi.encodePacked(uint256 index, address account, uint256 amount))
    MerkleProof.verify(proof, root, node)      // OpenZeppelin, sorted pairs

so the tree here is built exactly as Uniswap's `src/merkle-tree.ts` builds
it (the reference the contract's proofs were designed with):

- leaves are the keccak256 of the packed (index, account, amount), sorted
  as bytes;
- a parent is keccak256(min(a, b) || max(a, b)) ("sorted pair"), which is
  what OpenZeppelin's `_hashPair` computes, so a proof needs no left/right
  flags;
- a layer with an odd number of nodes carries its last node up unchanged
  (no duplication), and that node's proof simply has no element for the
  layer.

`build_distribution` assigns indexes by ascending address value (the same
as lowercase-hex order), so the same payouts always give the same root,
whatever order the database returned them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from eth_abi.packed import encode_packed
from eth_hash.auto import keccak

from datadao.wallet import to_checksum_address, validate_wallet_address

__all__ = [
    "Claim",
    "Distribution",
    "build_distribution",
    "build_indexed_distribution",
    "claim_leaf",
    "verify_claim",
    "verify_proof",
]

_UINT256_LIMIT = 2**256
_LEAF_TYPES = ("uint256", "address", "uint256")


class Claim(TypedDict):
    """What a recipient submits to the claim contract (plus its own address)."""

    index: int
    amount: int
    proof: list[str]


@dataclass(frozen=True)
class Distribution:
    """A Merkle root and every recipient's claim, keyed by checksummed address."""

    root: str
    claims: dict[str, Claim]
    token_total: int


def _normalise_address(account: str) -> str:
    """Checksummed spelling; reject a mixed-case address whose checksum fails.

    All-lowercase (or all-uppercase) input carries no checksum and is only
    re-spelled, but mixed case is a checksum claim, and a failing one means
    a typo that would send the payout to a stranger.
    """
    body = account[2:] if isinstance(account, str) else ""
    if body.lower() == body or body.upper() == body:
        return to_checksum_address(account)
    return validate_wallet_address(account)


def _check_uint256(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not 0 <= value < _UINT256_LIMIT:
        raise ValueError(f"{name} out of uint256 range: {value}")
    return value


def claim_leaf(index: int, account: str, amount: int) -> bytes:
    """keccak256(abi.encodePacked(uint256 index, address account, uint256 amount))."""
    return keccak(encode_packed(_LEAF_TYPES, (index, account, amount)))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a <= b else b + a)


def _hex(node: bytes) -> str:
    return "0x" + node.hex()


def _to_bytes32(name: str, value: str | bytes) -> bytes:
    if isinstance(value, str):
        if not value.startswith("0x"):
            raise ValueError(f"{name} must be 0x-prefixed hex")
        try:
            value = bytes.fromhex(value[2:])
        except ValueError as exc:
            raise ValueError(f"{name} is not valid hex") from exc
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes")
    return bytes(value)


def _build_layers(leaves: list[bytes]) -> list[list[bytes]]:
    """Layers from sorted leaves to the root, carrying an odd last node up."""
    layers = [leaves]
    while len(layers[-1]) > 1:
        layer = layers[-1]
        parents = [_hash_pair(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            parents.append(layer[-1])
        layers.append(parents)
    return layers


def build_indexed_distribution(entries: Iterable[tuple[int, str, int]]) -> Distribution:
    """Distribution from explicit (index, account, amount) entries.

    For callers that must keep indexes stable themselves (and for checking
    against published vectors); most code wants `build_distribution`.
    Indexes and accounts must be unique; amounts must be positive (a zero
    claim is a leaf nobody needs, and Uniswap's generator rejects it too).
    """
    normalised: list[tuple[int, str, int]] = []
    seen_index: set[int] = set()
    seen_account: set[str] = set()
    for index, account, amount in entries:
        _check_uint256("index", index)
        _check_uint256("amount", amount)
        if amount == 0:
            raise ValueError(f"zero amount for {account}; leave unpaid accounts out")
        checksummed = _normalise_address(account)
        if index in seen_index:
            raise ValueError(f"duplicate index {index}")
        if checksummed in seen_account:
            raise ValueError(f"duplicate account {checksummed}")
        seen_index.add(index)
        seen_account.add(checksummed)
        normalised.append((index, checksummed, amount))
    if not normalised:
        raise ValueError("cannot build a Merkle distribution with no claims")

    leaf_of = [claim_leaf(i, a, amt) for i, a, amt in normalised]
    leaves = sorted(leaf_of)
    position = {leaf: pos for pos, leaf in enumerate(leaves)}
    if len(position) != len(leaves):  # only a keccak collision could do this
        raise ValueError("duplicate leaves")
    layers = _build_layers(leaves)
    # Hex once per node, not once per proof element.
    hex_layers = [[_hex(node) for node in layer] for layer in layers[:-1]]

    claims: dict[str, Claim] = {}
    for (index, account, amount), leaf in zip(normalised, leaf_of):
        pos = position[leaf]
        proof: list[str] = []
        for layer in hex_layers:
            sibling = pos ^ 1
            if sibling < len(layer):
                proof.append(layer[sibling])
            pos //= 2
        claims[account] = Claim(index=index, amount=amount, proof=proof)
    return Distribution(
        root=_hex(layers[-1][0]),
        claims=claims,
        token_total=sum(amount for _, _, amount in normalised),
    )


def build_distribution(
    claims: Iterable[tuple[str, int]] | Mapping[str, int],
) -> Distribution:
    """Distribution from (address, amount) pairs, indexed by ascending address.

    Sorting by address value makes the root a pure function of the payouts,
    so settlement run twice publishes the same root. Addresses come back
    EIP-55 checksummed; see `build_indexed_distribution` for the rules.
    """
    pairs = list(claims.items()) if isinstance(claims, Mapping) else list(claims)
    # Lowercase hex order is address-value order; validation (and the
    # duplicate check, which must see "0xab.." and "0xAB.." as one account)
    # happens in build_indexed_distribution.
    pairs.sort(key=lambda pair: pair[0].lower() if isinstance(pair[0], str) else "")
    return build_indexed_distribution(
        (index, account, amount) for index, (account, amount) in enumerate(pairs)
    )


def verify_proof(root: str | bytes, leaf: str | bytes, proof: Sequence[str | bytes]) -> bool:
    """OpenZeppelin `MerkleProof.verify`: fold the proof with sorted pairs.

    Malformed input (not 32-byte hex) raises ValueError rather than
    returning False, so a caller's bug is not mistaken for a bad claim.
    """
    computed = _to_bytes32("leaf", leaf)
    for element in proof:
        computed = _hash_pair(computed, _to_bytes32("proof element", element))
    return computed == _to_bytes32("root", root)


def verify_claim(
    root: str | bytes, index: int, account: str, amount: int, proof: Sequence[str | bytes]
) -> bool:
    """What the claim contract checks for `claim(index, account, amount, proof)`."""
    return verify_proof(root, claim_leaf(index, account, amount), proof)
