# pragma version ~=0.4.3
"""
@title Cumulative Merkle distributor
@notice One root for all settled epochs: each leaf carries an address's
        cumulative earnings, keccak256(abi.encodePacked(uint256 index,
        address account, uint256 cumulative)), in a sorted-pair tree (the
        platform's rewards.merkle). A claim pays the cumulative amount less
        what the address already claimed, so one claim covers any number of
        epochs and a second claim of the same leaf pays nothing.
"""
from ethereum.ercs import IERC20

event RootUpdated:
    root: bytes32
    total: uint256

event Claimed:
    index: uint256
    account: indexed(address)
    amount: uint256
    cumulative: uint256

event PausedChanged:
    paused: bool

MAX_PROOF: constant(uint256) = 64

token: public(IERC20)
treasury: public(address)
root: public(bytes32)
total: public(uint256)
paused: public(bool)
claimed: public(HashMap[address, uint256])
total_claimed: public(uint256)


@deploy
def __init__(token_: address, treasury_: address):
    assert treasury_ != empty(address), "treasury required"
    self.token = IERC20(token_)
    self.treasury = treasury_


@external
def update_root(root_: bytes32, total_: uint256):
    """
    @notice Publish the root of every address's cumulative earnings (their sum: total_). The sum may
            shrink (a dispute claws back what an address had not claimed yet) but never below what
            the distributor has already paid.
    """
    assert msg.sender == self.treasury, "only the treasury"
    assert total_ >= self.total_claimed, "the root owes less than was already paid"
    self.root = root_
    self.total = total_
    log RootUpdated(root=root_, total=total_)


@external
def set_paused(paused_: bool):
    assert msg.sender == self.treasury, "only the treasury"
    self.paused = paused_
    log PausedChanged(paused=paused_)


@internal
@pure
def _hash_pair(a: bytes32, b: bytes32) -> bytes32:
    if convert(a, uint256) < convert(b, uint256):
        return keccak256(concat(a, b))
    return keccak256(concat(b, a))


@external
def claim(index: uint256, account: address, cumulative: uint256, proof: DynArray[bytes32, MAX_PROOF]):
    """@notice Pay `account` its cumulative earnings less what it already claimed."""
    assert not self.paused, "claims are paused"
    node: bytes32 = keccak256(concat(convert(index, bytes32), convert(account, bytes20), convert(cumulative, bytes32)))
    for sibling: bytes32 in proof:
        node = self._hash_pair(node, sibling)
    assert node == self.root, "invalid proof"
    already: uint256 = self.claimed[account]
    assert cumulative > already, "nothing left to claim"
    amount: uint256 = cumulative - already
    self.claimed[account] = cumulative
    self.total_claimed += amount
    assert extcall self.token.transfer(account, amount, default_return_value=True), "transfer failed"
    log Claimed(index=index, account=account, amount=amount, cumulative=cumulative)
