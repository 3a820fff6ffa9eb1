"""Exports: frozen, reproducible snapshots of a campaign's preference data (DESIGN.md, Export formats).

Requesting and building: ``request`` (validating a request: filters, split, licence), ``services``
(the build job: claim, heartbeat, pages, bundle, sweep), ``build_rows`` (one build's rows, page by page),
``sql_lines`` (the PostgreSQL fast path for K = 2 pairs). Reads: ``selectors``.
Formats, pure: ``formats`` (the format map, columns, Parquet schema), ``format_types`` (names, options,
source rows), ``prompts`` (prompt text and keys, the test split), ``consensus_formats`` (pair and ranking
rows from the consensus), ``judgment_formats`` (per-judgment and attribute rows), ``tokens``
(tokenizer-aware pair rows). Output: ``writers`` (JSONL and Parquet, hashed while written), ``card``
(the dataset card).
"""
