# pragma version ~=0.4.3
"""
@title DataDAO token
@notice An ERC-20 whose supply only the treasury can mint: the treasury mints
        to the claim contract what settled epochs owe experts, and nothing else.
"""
from ethereum.ercs import IERC20

implements: IERC20

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event TreasuryChanged:
    treasury: indexed(address)

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
treasury: public(address)


@deploy
def __init__(name_: String[32], symbol_: String[8], decimals_: uint8, treasury_: address):
    assert treasury_ != empty(address), "treasury required"
    self.name = name_
    self.symbol = symbol_
    self.decimals = decimals_
    self.treasury = treasury_


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to the zero address"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    self.allowance[sender][msg.sender] -= amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.treasury, "only the treasury mints"
    assert receiver != empty(address), "mint to the zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def set_treasury(treasury_: address):
    assert msg.sender == self.treasury, "only the treasury"
    assert treasury_ != empty(address), "treasury required"
    self.treasury = treasury_
    log TreasuryChanged(treasury=treasury_)
