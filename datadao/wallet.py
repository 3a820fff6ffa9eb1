"""EIP-55 wallet addresses, without Django.

Experts give a wallet address to receive payouts and on-chain claims. A typo
in an address sends money nowhere, and EIP-55's mixed-case checksum is the
only typo detection an Ethereum address carries, so the product accepts
checksummed input only: an all-lowercase address has no checksum to check
and is rejected too, with the checksummed spelling offered, so that the
expert copies the address from the wallet instead of retyping it.

Spec: https://eips.ethereum.org/EIPS/eip-55 . The checksum upper-cases the
i-th hex letter of the address when the i-th nibble of
keccak256(lowercase hex address, as ASCII) is >= 8.
"""

from __future__ import annotations

import re

from eth_hash.auto import keccak

__all__ = ["is_checksum_address", "to_checksum_address", "validate_wallet_address"]

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")


# Maps each hex digit of the hash to the ASCII case bit (0x20) when the
# digit is >= 8, else to 0, so the case pattern is built with bytes
# operations instead of a Python loop over 40 characters (a Merkle build
# checksums every recipient: 100k addresses per epoch).
_CASE_BIT = bytes(0x20 if chr(i) in "89abcdef" else 0 for i in range(256))
_LETTER_BITS = int.from_bytes(b"\x40" * 40, "big")  # set in 'a'-'f', not '0'-'9'


def _checksum_hex(hex40_lower: str) -> str:
    """Apply the EIP-55 case pattern to 40 lowercase hex digits (no prefix).

    Upper-casing ASCII a-f is subtracting 0x20; it applies where the hash
    digit is >= 8 and the address character is a letter.
    """
    raw = hex40_lower.encode("ascii")
    hash_digits = keccak(raw).hex()[:40].encode("ascii")
    case_bits = int.from_bytes(hash_digits.translate(_CASE_BIT), "big")
    letters = (int.from_bytes(raw, "big") & _LETTER_BITS) >> 1
    upper = int.from_bytes(raw, "big") - (case_bits & letters)
    return "0x" + upper.to_bytes(40, "big").decode("ascii")


def to_checksum_address(addr: str) -> str:
    """Return the EIP-55 spelling of a 0x-prefixed, 40-hex-digit address.

    The input's case is ignored, so this also repairs a wrongly-cased
    address; use `validate_wallet_address` where the input's own checksum
    must be honoured.
    """
    if not isinstance(addr, str) or not _HEX_ADDRESS.fullmatch(addr):
        raise ValueError(f"not a 0x-prefixed 40-hex-digit address: {addr!r}")
    return _checksum_hex(addr[2:].lower())


def is_checksum_address(addr: str) -> bool:
    """True only for a well-formed address spelled exactly as EIP-55 says.

    All-lowercase and all-uppercase addresses are valid hex but carry no
    checksum, so they are not "checksum addresses" here.
    """
    if not isinstance(addr, str) or not _HEX_ADDRESS.fullmatch(addr):
        return False
    return _checksum_hex(addr[2:].lower()) == addr


def validate_wallet_address(addr: str) -> str:
    """Return the address if it is EIP-55 checksummed, else raise ValueError.

    The message says what is wrong (prefix, length, characters, checksum)
    and, for a well-formed address with the wrong case, offers the
    checksummed spelling, which forms can show as a hint.
    """
    if not isinstance(addr, str):
        raise ValueError("wallet address must be a string")
    if addr != addr.strip():
        raise ValueError("wallet address has leading or trailing whitespace")
    if not addr.startswith("0x"):
        raise ValueError("wallet address must start with '0x'")
    body = addr[2:]
    if len(body) != 40:
        raise ValueError(
            f"wallet address must have 40 hex digits after '0x', got {len(body)}"
        )
    bad = sorted({c for c in body if c not in _HEX_CHARS})
    if bad:
        raise ValueError(
            "wallet address contains non-hex characters: " + ", ".join(repr(c) for c in bad)
        )
    checksummed = _checksum_hex(body.lower())
    if addr != checksummed:
        raise ValueError(
            f"wallet address is not EIP-55 checksummed; did you mean {checksummed}?"
        )
    return addr
