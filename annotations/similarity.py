"""Near-duplicates by cosine similarity of sentence embeddings.

Three checks the quality jobs run on stored embeddings (see
``annotations/embeddings.py``), all plain NumPy and memory-bounded:

* :func:`near_duplicate_pairs`: a task whose two responses say the same thing
  teaches a reward model nothing, whatever the experts pick;
* :func:`near_copies`: rationales by different experts on the same task that
  are (almost) the same text, a sign of copying or of one person with two
  accounts;
* :func:`duplicate_prompts`: prompts already seen earlier in an upload or a
  campaign.

Embeddings are normalised here, so callers may pass raw vectors; all-zero rows
(nothing to compare) are never a duplicate of anything.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Similarity tiles hold at most this many float32 cells (16 MB), whatever the
# number of rows.
_TILE_CELLS = 4_000_000


def normalise_rows(embeddings: npt.ArrayLike) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32; zero rows stay zero."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def near_duplicate_pairs(emb_a: npt.ArrayLike, emb_b: npt.ArrayLike, threshold: float = 0.97) -> np.ndarray:
    """Mask of tasks whose two responses are near-duplicates: row-wise cosine
    of ``emb_a[i]`` and ``emb_b[i]`` at least ``threshold``."""
    a = normalise_rows(emb_a)
    b = normalise_rows(emb_b)
    if a.shape != b.shape:
        raise ValueError(f"emb_a {a.shape} and emb_b {b.shape} must have the same shape")
    return np.einsum("ij,ij->i", a, b) >= threshold


@dataclass(frozen=True)
class NearCopies:
    """Pairs of rows ``left[i] < right[i]`` and their cosine similarity."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return int(self.left.shape[0])


def _codes(ids: Sequence[Hashable] | np.ndarray, n: int, what: str) -> np.ndarray:
    values = list(ids)
    if len(values) != n:
        raise ValueError(f"{what} must have one id per row ({n}), got {len(values)}")
    index: dict[Hashable, int] = {}
    return np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=n)


def near_copies(
    embeddings: npt.ArrayLike,
    group_ids: Sequence[Hashable] | np.ndarray,
    owner_ids: Sequence[Hashable] | np.ndarray,
    threshold: float = 0.9,
) -> NearCopies:
    """Pairs of rows in the same group (task) by different owners with cosine
    at least ``threshold``, sorted by ``(left, right)``.

    Only pairs within a group are compared, so the cost is the sum of squared
    group sizes, not the square of the row count. Groups of equal size are
    stacked and compared in one batched matrix product (``g x s x s``) instead
    of a Python loop per task; a group too large for one tile is compared
    block by block.
    """
    x = normalise_rows(embeddings)
    n = x.shape[0]
    groups = _codes(group_ids, n, "group_ids")
    owners = _codes(owner_ids, n, "owner_ids")
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    sims: list[np.ndarray] = []

    def keep(rows_a: np.ndarray, rows_b: np.ndarray, sim: np.ndarray) -> None:
        ok = (sim >= threshold) & (owners[rows_a] != owners[rows_b]) & (rows_a < rows_b)
        lefts.append(rows_a[ok])
        rights.append(rows_b[ok])
        sims.append(sim[ok])

    if n > 1:
        order = np.argsort(groups, kind="stable")
        sorted_groups = groups[order]
        starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
        sizes = np.diff(np.r_[starts, n])
        max_batched = int(np.sqrt(_TILE_CELLS))
        for size in np.unique(sizes[sizes > 1]):
            size = int(size)
            group_starts = starts[sizes == size]
            if size > max_batched:
                for s0 in group_starts:
                    rows = order[s0 : s0 + size]
                    _blocked_pairs(x, rows, keep)
                continue
            per_batch = max(1, _TILE_CELLS // (size * size))
            offsets = np.arange(size)
            upper_a, upper_b = np.triu_indices(size, k=1)
            for b0 in range(0, group_starts.shape[0], per_batch):
                rows = order[group_starts[b0 : b0 + per_batch, None] + offsets]  # (g, s)
                block = x[rows]  # (g, s, d)
                sim = np.matmul(block, block.transpose(0, 2, 1))[:, upper_a, upper_b]  # (g, pairs)
                ra, rb = rows[:, upper_a], rows[:, upper_b]
                keep(np.minimum(ra, rb).ravel(), np.maximum(ra, rb).ravel(), sim.ravel())

    if lefts:
        left, right, similarity = np.concatenate(lefts), np.concatenate(rights), np.concatenate(sims)
    else:
        left = right = np.empty(0, dtype=np.int64)
        similarity = np.empty(0, dtype=np.float32)
    ordering = np.lexsort((right, left))
    return NearCopies(left=left[ordering], right=right[ordering], similarity=similarity[ordering])


def _blocked_pairs(x: np.ndarray, rows: np.ndarray, keep) -> None:
    """All pairs within one large group, tile by tile (upper triangle only)."""
    rows = np.sort(rows)
    size = rows.shape[0]
    tile = max(1, int(np.sqrt(_TILE_CELLS)))
    for i0 in range(0, size, tile):
        ri = rows[i0 : i0 + tile]
        for j0 in range(i0, size, tile):
            rj = rows[j0 : j0 + tile]
            sim = x[ri] @ x[rj].T
            a, b = np.meshgrid(ri, rj, indexing="ij")
            keep(a.ravel(), b.ravel(), sim.ravel())


def duplicate_prompts(embeddings: npt.ArrayLike, threshold: float = 0.95, *, block: int = 2048) -> np.ndarray:
    """For each row, the index of the first earlier row with cosine at least
    ``threshold``, or -1.

    "First earlier" makes the answer a canonical representative: keep rows
    whose entry is -1 and every duplicate points at a kept row or at a row
    that itself points further back (similarity is not transitive, so a chain
    is possible; the earliest match is what a reader of the upload would call
    "already seen").

    Computed as ``block x block`` tiles of the lower triangle of the cosine
    matrix, so memory is ``O(block^2)`` whatever the row count; column tiles
    are visited left to right and a row stops being searched once it has a
    match.
    """
    x = normalise_rows(embeddings)
    n = x.shape[0]
    result = np.full(n, -1, dtype=np.int64)
    if block < 1:
        raise ValueError("block must be positive")
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        pending = np.arange(r0, r1)
        for c0 in range(0, r1, block):
            if pending.size == 0:
                break
            c1 = min(r1, c0 + block)
            sim = x[pending] @ x[c0:c1].T  # (pending, cols)
            cols = np.arange(c0, c1)
            hit = (sim >= threshold) & (cols[None, :] < pending[:, None])
            found = hit.any(axis=1)
            if found.any():
                result[pending[found]] = c0 + hit[found].argmax(axis=1)
                pending = pending[~found]
    return result
