"""EIP-55 checks for the wallet addresses experts give for payouts."""

from __future__ import annotations

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from hypothesis import given
from hypothesis import strategies as st

from datadao.wallet import is_checksum_address, to_checksum_address, validate_wallet_address

# Test vectors from the EIP-55 specification.
EIP55_VECTORS = [
    # All caps
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    # All lower
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    # Normal
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]
MIXED_CASE = EIP55_VECTORS[4:]



def _reference_checksum(address: str) -> str:
    """EIP-55 as the spec words it, one character at a time."""
    lower = address[2:].lower()
    digest = pycryptodome_keccak.new(digest_bits=256, data=lower.encode()).hexdigest()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(lower, digest))


hex_addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_spec_vectors_round_trip(address: str) -> None:
    assert _reference_checksum(address) == address
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address("0x" + address[2:].upper()) == address
    assert is_checksum_address(address)


@pytest.mark.parametrize("address", MIXED_CASE)
def test_spec_vectors_are_accepted(address: str) -> None:
    assert validate_wallet_address(address) == address


@pytest.mark.parametrize("address", MIXED_CASE)
def test_lowercase_is_rejected_with_the_checksummed_suggestion(address: str) -> None:
    lower = address.lower()
    assert not is_checksum_address(lower)
    with pytest.raises(ValueError, match="not EIP-55 checksummed; did you mean") as exc:
        validate_wallet_address(lower)
    assert address in str(exc.value)


@pytest.mark.parametrize("address", MIXED_CASE)
def test_one_flipped_letter_is_a_checksum_error(address: str) -> None:
    pos = next(i for i, c in enumerate(address) if i >= 2 and c.isalpha())
    typo = address[:pos] + address[pos].swapcase() + address[pos + 1 :]
    assert not is_checksum_address(typo)
    with pytest.raises(ValueError, match=f"did you mean {address}"):
        validate_wallet_address(typo)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "start with '0x'"),
        ("0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "start with '0x'"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", "40 hex digits after '0x', got 39"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00", "got 42"),
        ("0x", "got 0"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeZ", "non-hex characters: 'Z'"),
        (" 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "whitespace"),
    ],
)
def test_malformed_addresses_say_what_is_wrong(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_wallet_address(address)
    assert not is_checksum_address(address)


def test_to_checksum_rejects_malformed_input() -> None:
    with pytest.raises(ValueError):
        to_checksum_address("0x1234")
    with pytest.raises(ValueError):
        validate_wallet_address(None)  # type: ignore[arg-type]


@given(hex_addresses)
def test_checksum_is_idempotent_and_case_insensitive(address: str) -> None:
    checksummed = to_checksum_address(address)
    assert checksummed == _reference_checksum(address)
    assert checksummed.lower() == address
    assert to_checksum_address(checksummed) == checksummed
    assert to_checksum_address("0x" + address[2:].upper()) == checksummed
    assert is_checksum_address(checksummed)
    assert validate_wallet_address(checksummed) == checksummed
