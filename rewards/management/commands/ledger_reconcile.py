"""Recompute every balance from the ledger entries and report any difference."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rewards.models import Account, LedgerTransaction
from rewards.selectors import ledger_differences


class Command(BaseCommand):
    help = (
        "Check the ledger: balances equal the sum of their entries, transactions sum to zero, all balances "
        "sum to zero, nothing but the external account is negative. Exits non-zero on any difference."
    )

    def handle(self, *args, **options):
        differences = ledger_differences()
        accounts = Account.objects.count()
        transactions = LedgerTransaction.objects.count()
        if not differences:
            self.stdout.write(self.style.SUCCESS(
                f"Ledger reconciles: {accounts} accounts, {transactions} transactions, no differences."
            ))
            return
        for d in differences:
            self.stderr.write(f"DIFFERENCE {d.what}: expected {d.expected}, found {d.found} ({d.found - d.expected:+d})")
        raise CommandError(f"{len(differences)} difference(s) found in {accounts} accounts.")
