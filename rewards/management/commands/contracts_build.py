"""Compile the Vyper contracts into the artifacts the platform loads (``contracts/build/<name>.json``).

The web process and the chain jobs read the committed artifacts only, so
they never need the compiler; CI compiles the sources again
(``tests/rewards/test_chain.py``) and fails when an artifact is stale.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.management.base import BaseCommand

from rewards.chain import ARTIFACTS_DIR, CONTRACTS, CONTRACTS_DIR, artifact_path


def build(name: str) -> dict[str, Any]:
    """The artifact of ``contracts/<name>.vy``: abi, bytecode, the compiler's version and the source's sha256."""
    import vyper

    source = (CONTRACTS_DIR / f"{name}.vy").read_text()
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return {
        "contract": name,
        "vyper_version": vyper.__version__,
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "abi": out["abi"],
        "bytecode": out["bytecode"],
    }


class Command(BaseCommand):
    help = "Compile contracts/*.vy with Vyper and rewrite contracts/build/<name>.json (abi, bytecode, versions)."

    def handle(self, *args, **options):
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        for name in CONTRACTS:
            body = build(name)
            artifact_path(name).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
            self.stdout.write(f"{artifact_path(name).relative_to(CONTRACTS_DIR.parent)}: vyper {body['vyper_version']}, "
                              f"{(len(body['bytecode']) - 2) // 2} bytes, source sha256 {body['source_sha256'][:12]}")
