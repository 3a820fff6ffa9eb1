"""Merkle distributions must verify the way the on-chain claim contract does.

The reference verifier below is written from OpenZeppelin's
`MerkleProof.verify` (processProof with `_hashPair` = keccak256 of the sorted
pair) and the Uniswap MerkleDistributor leaf, using pycryptodome's keccak and
hand-packed bytes, so it shares no code with `rewards.merkle`.
"""

from __future__ import annotations

import random

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.merkle import (
    build_distribution,
    build_indexed_distribution,
    claim_leaf,
    verify_claim,
    verify_proof,
)
from datadao.wallet import to_checksum_address

# ---------------------------------------------------------------------------
# Independent reference (OpenZeppelin MerkleProof + MerkleDistributor.claim)
# ---------------------------------------------------------------------------


def _keccak256(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def _reference_leaf(index: int, account: str, amount: int) -> bytes:
    # abi.encodePacked(uint256, address, uint256): 32 + 20 + 32 bytes.
    return _keccak256(
        index.to_bytes(32, "big") + bytes.fromhex(account[2:]) + amount.to_bytes(32, "big")
    )


def _reference_verify(root_hex: str, index: int, account: str, amount: int, proof: list[str]) -> bool:
    computed = _reference_leaf(index, account, amount)
    for element_hex in proof:
        element = bytes.fromhex(element_hex[2:])
        a, b = (computed, element) if computed < element else (element, computed)
        computed = _keccak256(a + b)
    return computed == bytes.fromhex(root_hex[2:])


# ---------------------------------------------------------------------------
# Published vectors
# ---------------------------------------------------------------------------

# Uniswap/merkle-distributor test/MerkleDistributor.spec.ts "parseBalanceMap":
# the first three wallets of the "horn horn ..." test mnemonic, amounts
# 200, 300, 250, and the proofs that test expects. The root is the one its
# Go port (and README) prints for the same map.
UNISWAP_WALLETS = [
    "0x17ec8597ff92C3F44523bDc65BF0f1bE632917ff",
    "0x63FC2aD3d021a4D7e64323529a55a9442C444dA0",
    "0xD1D84F0e28D6fedF03c73151f98dF95139700aa7",
]


def test_matches_uniswap_parse_balance_map_vector() -> None:
    dist = build_distribution(
        {UNISWAP_WALLETS[0]: 200, UNISWAP_WALLETS[1]: 300, UNISWAP_WALLETS[2]: 250}
    )
    assert dist.root == "0x2ec9c2fc2a55df417ba88ecd833f165fa3c5941772ebaf8c5f4debe33f4d1b12"
    assert dist.token_total == 750
    assert dist.claims == {
        UNISWAP_WALLETS[0]: {
            "index": 0,
            "amount": 200,
            "proof": ["0x2a411ed78501edb696adca9e41e78d8256b61cfac45612fa0434d7cf87d916c6"],
        },
        UNISWAP_WALLETS[1]: {
            "index": 1,
            "amount": 300,
            "proof": [
                "0xbfeb956a3b705056020a3b64c540bff700c0f6c96c55c0a5fcab57124cb36f7b",
                "0xd31de46890d4a77baeebddbd77bf73b5c626397b73ee8c69b51efe4c9a5a72fa",
            ],
        },
        UNISWAP_WALLETS[2]: {
            "index": 2,
            "amount": 250,
            "proof": [
                "0xceaacce7533111e902cc548e961d77b23a4d8cd073c6b68ccf55c62bd47fc36b",
                "0xd31de46890d4a77baeebddbd77bf73b5c626397b73ee8c69b51efe4c9a5a72fa",
            ],
        },
    }


def test_matches_eight_leaf_balance_tree_vector() -> None:
    # Go port of the same BalanceTree (indexes in input order); its first
    # three leaves are the Uniswap ones above, so the sibling hashes recur.
    entries = [
        (0, UNISWAP_WALLETS[0], 200),
        (1, UNISWAP_WALLETS[1], 300),
        (2, UNISWAP_WALLETS[2], 250),
        (3, "0xD1D84F0e28D6fedF03c73151f98dF95139700aa8", 10),
        (4, "0xD1D84F0e28D6fedF03c73151f98dF95139700aa1", 20),
        (5, "0xD1D84F0e28D6fedF03c73151f98dF95139700aa2", 30),
        (6, "0xD1D84F0e28D6fedF03c73151f98dF95139700aa3", 40),
        (7, "0xD1D84F0e28D6fedF03c73151f98dF95139700aa0", 5),
    ]
    dist = build_indexed_distribution(
        (i, a.lower(), amt) for i, a, amt in entries  # lowercase is re-spelled
    )
    assert dist.root == "0x91978bc497b90e81384a2e66872de65119d7411a95b8524a129c85eb75000bb0"
    first = dist.claims[to_checksum_address(entries[0][1])]
    assert first["proof"] == [
        "0xf7dc7c4c12b6340275991cece1c68349d534c2bcc3a9f1f3cdd81b438f9d20f3",
        "0x2a411ed78501edb696adca9e41e78d8256b61cfac45612fa0434d7cf87d916c6",
        "0x4214e9a8dc1c86b583a4997a342da1841fff86229561ba609bf38e64e3dc63c3",
    ]
    for index, account, amount in entries:
        claim = dist.claims[to_checksum_address(account)]
        assert claim["index"] == index
        assert _reference_verify(dist.root, index, account, amount, claim["proof"])


def test_leaf_is_the_merkle_distributor_node() -> None:
    assert claim_leaf(0, UNISWAP_WALLETS[0], 200) == _reference_leaf(0, UNISWAP_WALLETS[0], 200)
    assert claim_leaf(0, UNISWAP_WALLETS[0], 200).hex() == (
        "d31de46890d4a77baeebddbd77bf73b5c626397b73ee8c69b51efe4c9a5a72fa"
    )


# ---------------------------------------------------------------------------
# Properties on random distributions
# ---------------------------------------------------------------------------


def _random_claims(rng: random.Random, size: int) -> list[tuple[str, int]]:
    accounts = {"0x" + rng.randbytes(20).hex() for _ in range(size)}
    while len(accounts) < size:  # astronomically unlikely, but keep size exact
        accounts.add("0x" + rng.randbytes(20).hex())
    amount_bits = [8, 64, 128, 256]
    return [
        (to_checksum_address(a), rng.randrange(1, 2 ** rng.choice(amount_bits)))
        for a in sorted(accounts)
    ]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), seed=st.integers(0, 2**32 - 1))
def test_every_proof_verifies_with_the_reference(size: int, seed: int) -> None:
    rng = random.Random(seed)
    claims = _random_claims(rng, size)
    rng.shuffle(claims)
    dist = build_distribution(claims)

    assert set(dist.claims) == {a for a, _ in claims}
    assert sorted(c["index"] for c in dist.claims.values()) == list(range(size))
    assert dist.token_total == sum(amount for _, amount in claims)
    # Indexes follow ascending address value.
    by_index = sorted(dist.claims, key=lambda a: dist.claims[a]["index"])
    assert by_index == sorted(dist.claims, key=lambda a: int(a, 16))
    depth = max(0, (size - 1).bit_length())
    for account, claim in dist.claims.items():
        assert claim["amount"] == dict(claims)[account]
        assert len(claim["proof"]) <= depth
        assert _reference_verify(dist.root, claim["index"], account, claim["amount"], claim["proof"])
        assert verify_claim(dist.root, claim["index"], account, claim["amount"], claim["proof"])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=2, max_value=300), seed=st.integers(0, 2**32 - 1))
def test_tampered_claims_fail(size: int, seed: int) -> None:
    rng = random.Random(seed)
    dist = build_distribution(_random_claims(rng, size))
    accounts = list(dist.claims)
    account = rng.choice(accounts)
    claim = dist.claims[account]
    index, amount, proof = claim["index"], claim["amount"], claim["proof"]
    other = rng.choice([a for a in accounts if a != account])

    assert not _reference_verify(dist.root, index, account, amount + 1, proof)
    assert not _reference_verify(dist.root, index, account, amount - 1, proof) or amount == 1
    assert not _reference_verify(dist.root, (index + 1) % size, account, amount, proof)
    assert not _reference_verify(dist.root, index, other, amount, proof)
    assert not verify_claim(dist.root, index, account, amount + 1, proof)
    assert not verify_claim(dist.root, index, other, amount, proof)
    # Someone else's proof does not work for this claim either.
    other_proof = dist.claims[other]["proof"]
    if other_proof != proof:
        assert not _reference_verify(dist.root, index, account, amount, other_proof)
    # Nor does a proof with an element dropped or corrupted.
    if proof:
        assert not verify_proof(dist.root, claim_leaf(index, account, amount), proof[:-1])
        bad = bytearray.fromhex(proof[0][2:])
        bad[0] ^= 1
        assert not verify_proof(
            dist.root, claim_leaf(index, account, amount), ["0x" + bad.hex()] + proof[1:]
        )


def test_root_does_not_depend_on_input_order() -> None:
    rng = random.Random(7)
    claims = _random_claims(rng, 57)
    shuffled = claims[:]
    rng.shuffle(shuffled)
    assert build_distribution(claims).root == build_distribution(shuffled).root
    assert build_distribution(claims).root == build_distribution(dict(shuffled)).root


def test_single_claim_root_is_its_leaf() -> None:
    dist = build_distribution([(UNISWAP_WALLETS[1], 5)])
    claim = dist.claims[UNISWAP_WALLETS[1]]
    assert claim == {"index": 0, "amount": 5, "proof": []}
    assert dist.root == "0x" + _reference_leaf(0, UNISWAP_WALLETS[1], 5).hex()


def test_odd_node_is_carried_up_not_duplicated() -> None:
    # With 3 leaves the largest is carried to the root layer, so its proof is
    # one element long; duplicating it would have made it two.
    dist = build_distribution(
        {UNISWAP_WALLETS[0]: 200, UNISWAP_WALLETS[1]: 300, UNISWAP_WALLETS[2]: 250}
    )
    assert sorted(len(c["proof"]) for c in dist.claims.values()) == [1, 2, 2]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ([], "no claims"),
        ([(UNISWAP_WALLETS[0], 0)], "zero amount"),
        ([(UNISWAP_WALLETS[0], -1)], "uint256"),
        ([(UNISWAP_WALLETS[0], 2**256)], "uint256"),
        ([(UNISWAP_WALLETS[0], 1.5)], "must be an int"),
        ([(UNISWAP_WALLETS[0], 1), (UNISWAP_WALLETS[0].lower(), 2)], "duplicate account"),
        ([("0x17EC8597ff92C3F44523bDc65BF0f1bE632917ff", 1)], "not EIP-55 checksummed"),
        ([("0x1234", 1)], "40-hex-digit"),
    ],
)
def test_bad_input_is_rejected(claims: list[tuple[str, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_distribution(claims)


def test_duplicate_index_is_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate index"):
        build_indexed_distribution([(0, UNISWAP_WALLETS[0], 1), (0, UNISWAP_WALLETS[1], 1)])


def test_verify_proof_rejects_malformed_hex() -> None:
    leaf = claim_leaf(0, UNISWAP_WALLETS[0], 200)
    with pytest.raises(ValueError):
        verify_proof("0x1234", leaf, [])
    with pytest.raises(ValueError):
        verify_proof("0x" + leaf.hex(), leaf, ["zz"])
    assert verify_proof("0x" + leaf.hex(), "0x" + leaf.hex(), [])
