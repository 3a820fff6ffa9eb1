"""Exports: frozen, reproducible snapshots of a campaign's preference data (DESIGN.md, Export formats).

``services`` (request and build), ``selectors`` (reads), ``formats`` (row
builders, pure), ``tokens`` (tokenizer-aware pair rows, pure), ``writers``
(JSONL and Parquet, hashed while written), ``card`` (the dataset card).
"""
