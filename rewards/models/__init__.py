"""The token economy's tables: a double-entry ledger, stakes, epochs, Merkle claims and data sales.

One module per part, all re-exported here, so ``rewards.models.X`` names
every model wherever it lives:

* ``ledger``: ``Account``, ``LedgerTransaction``, ``LedgerEntry`` (append-only,
  written only by ``rewards.ledger.ledger_post_batch``) and the ``LabBalance``
  admin view;
* ``stakes``: ``Unbonding`` cooldowns and ``Slash`` cuts;
* ``epochs``: ``Epoch``, each expert's ``EpochReward`` and the ``HeldPayout``
  admin view of rewards on hold;
* ``chain``: ``EpochClaim``, ``ChainCursor``, ``ChainClaim`` and
  ``ClaimAdjustment``, the on-chain side of payouts;
* ``sales``: ``DataPurchase``, a lab buying another lab's data.
"""
from __future__ import annotations

from rewards.models.ledger import Account, LabBalance, LedgerEntry, LedgerTransaction
from rewards.models.stakes import Slash, Unbonding
from rewards.models.epochs import Epoch, EpochReward, HeldPayout
from rewards.models.chain import ChainClaim, ChainCursor, ClaimAdjustment, EpochClaim
from rewards.models.sales import DataPurchase

__all__ = [
    "Account",
    "ChainClaim",
    "ChainCursor",
    "ClaimAdjustment",
    "DataPurchase",
    "Epoch",
    "EpochClaim",
    "EpochReward",
    "HeldPayout",
    "LabBalance",
    "LedgerEntry",
    "LedgerTransaction",
    "Slash",
    "Unbonding",
]
