"""The data-value app: what a campaign's judgments are worth, and candidate responses from a local checkpoint.

* ``models``: text embeddings, data-value reports and per-expert values, generation jobs (their tables keep
  their ``annotations_*`` names from before the app was split out).
* ``services``: embedding a campaign's texts and computing its KNN-Shapley data values; the periodic refresh.
* ``valuation``: the pure maths (KNN-Shapley, the Bradley-Terry probe), NumPy and SciPy only.
* ``candidates``: generation jobs (request, run, cancel); ``generation`` samples from the checkpoint.
* ``api``, ``urls``, ``admin``, ``tasks``: the lab and expert endpoints, the read-only admin, the Celery jobs
  (registered under their old ``annotations.*`` names, which beat and queued messages use).

This app owns the model-side requirements (``requirements-ml.txt``: torch, transformers, the packaged MiniLM).
The sentence encoder, tokenizer helpers and near-duplicate maths it uses (``annotations.embeddings``,
``annotations.tokenization``, ``annotations.similarity``) stay in annotations because the exports use them too.

It sits between ``rewards`` (which reads ``DataValue``) and ``annotations`` (campaigns, tasks, judgments):
it may import annotations, never the other way round (``.importlinter``).
"""
