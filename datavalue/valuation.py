"""What a preference judgment is worth: a reward-model probe and KNN-Shapley.

Two questions, two tools, both over sentence embeddings (no Django, no torch):

* **Is there signal?** :func:`bt_probe_fit` trains a Bradley-Terry probe: a
  linear reward ``r(x) = w . emb(x)`` with ``P(a preferred to b) =
  sigmoid(r(a) - r(b))``, fitted by L2-regularised logistic regression on
  embedding differences. Its held-out accuracy (:func:`bt_probe_accuracy`) on
  consensus pairs says whether the campaign's judgments are learnable at all.

* **Whose judgments help?** :func:`knn_shapley` is the exact closed form of
  Jia et al. 2019, "Efficient task-specific data valuation for nearest neighbor
  algorithms" (Theorem 1): the Shapley value of every training point for a
  K-nearest-neighbour classifier, scored on a validation set (gold and
  high-agreement pairs), in ``O(N log N)`` per validation point instead of
  ``2^N`` subsets. :func:`pair_values` applies it to preference pairs and
  sums the values per contributor.

Why Shapley: it is the unique split of the validation utility that is
efficient (values add up to ``u(all) - u(empty)``), symmetric (interchangeable
points earn the same) and null (a point that never changes the utility earns 0).
Symmetry is what makes copying unprofitable: ``m`` identical copies of one pair
share what one copy would have earned, while a pair that is the only evidence
for its region keeps all of it.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, log_expit

# Distance and rank matrices are built for this many (validation x training)
# cells at a time (about 8 float64/int64 arrays of this size live at once), so
# memory stays near 250 MB whatever the sizes.
_KNN_CHUNK_CELLS = 4_000_000


# --------------------------------------------------------------------------
# Bradley-Terry probe
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BTProbe:
    """A linear reward over embeddings: ``reward(e) = weights . e``.

    No intercept: Bradley-Terry only sees reward differences, and a bias term
    would make ``P(a > b) + P(b > a) != 1``.
    """

    weights: np.ndarray
    l2: float

    def reward(self, embeddings: npt.ArrayLike) -> np.ndarray:
        """Scalar reward of each embedding row (only differences are meaningful)."""
        return np.asarray(embeddings, dtype=np.float64) @ self.weights

    def predict_proba(self, diff_embeddings: npt.ArrayLike) -> np.ndarray:
        """``P(first preferred)`` for rows ``emb(first) - emb(second)``."""
        return expit(np.asarray(diff_embeddings, dtype=np.float64) @ self.weights)


def _as_direction(labels: npt.ArrayLike, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if y.dtype == bool:
        return y.astype(np.float64)
    values = set(np.unique(y).tolist())
    if values <= {0, 1}:
        return y.astype(np.float64)
    if values <= {-1, 1}:
        return (y > 0).astype(np.float64)
    raise ValueError("labels must be 1/0, True/False or +1/-1 (1: the first item is preferred)")


def balanced_orientation(
    diff_embeddings: npt.ArrayLike, labels: npt.ArrayLike, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Flip a random half of the pairs: ``(d, y) -> (-d, 1 - y)``.

    Exports store pairs as chosen minus rejected, so every label is 1 and a
    logistic regression would see one class. Reading a pair the other way
    round is the same judgment, so flipping loses nothing and balances the
    classes. Returns float64 differences and 0/1 labels.
    """
    x = np.array(diff_embeddings, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"diff_embeddings must be 2-D, got shape {x.shape}")
    y = _as_direction(labels, x.shape[0])
    flip = np.random.default_rng(seed).random(x.shape[0]) < 0.5
    x[flip] *= -1.0
    y = np.where(flip, 1.0 - y, y)
    return x, y


def bt_probe_fit(
    diff_embeddings: npt.ArrayLike,
    labels: npt.ArrayLike,
    l2: float = 1.0,
    *,
    seed: int = 0,
) -> BTProbe:
    """Fit a Bradley-Terry probe on pair differences ``emb(a) - emb(b)``.

    ``labels[i]`` is 1 (or True / +1) when ``a`` was preferred. Minimises the
    summed logistic loss plus ``l2/2 * ||w||^2`` (the same objective as
    scikit-learn's ``LogisticRegression(C=1/l2, fit_intercept=False)``) with
    L-BFGS; the problem is strictly convex for ``l2 > 0``, so the optimum is
    unique. Pairs are first oriented at random (:func:`balanced_orientation`).
    """
    if l2 <= 0:
        raise ValueError("l2 must be positive")
    x, y = balanced_orientation(diff_embeddings, labels, seed=seed)
    n, d = x.shape
    if n == 0:
        return BTProbe(weights=np.zeros(d), l2=l2)
    sign = 2.0 * y - 1.0  # +1 / -1

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = sign * (x @ w)
        loss = -log_expit(margin).sum() + 0.5 * l2 * (w @ w)
        grad = -(x.T @ (sign * expit(-margin))) + l2 * w
        return float(loss), grad

    result = minimize(objective, np.zeros(d), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return BTProbe(weights=result.x, l2=l2)


def bt_probe_accuracy(probe: BTProbe, diff_embeddings: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Share of held-out pairs whose preferred side the probe ranks higher.

    A tie (probability exactly 0.5, e.g. a zero difference) counts as wrong,
    so a probe that has learnt nothing cannot score above chance. ``nan`` for
    no pairs.
    """
    x = np.asarray(diff_embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"diff_embeddings must be 2-D, got shape {x.shape}")
    y = _as_direction(labels, x.shape[0])
    if x.shape[0] == 0:
        return float("nan")
    score = x @ probe.weights
    correct = np.where(y > 0.5, score > 0, score < 0)
    return float(correct.mean())


# --------------------------------------------------------------------------
# KNN-Shapley (Jia et al. 2019)
# --------------------------------------------------------------------------


def _squared_distances(val_x: np.ndarray, train_x: np.ndarray, train_sq: np.ndarray) -> np.ndarray:
    d = train_sq[None, :] - 2.0 * (val_x @ train_x.T)
    d += np.einsum("ij,ij->i", val_x, val_x)[:, None]
    np.maximum(d, 0.0, out=d)
    return d


def knn_shapley(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    val_x: npt.ArrayLike,
    val_y: npt.ArrayLike,
    k: int,
    *,
    chunk_cells: int = _KNN_CHUNK_CELLS,
) -> np.ndarray:
    """Exact Shapley value of each training point for a K-NN classifier.

    The utility of a training subset ``S`` for one validation point ``(v, y)``
    is ``u(S) = (1/K) * sum_{j <= min(K, |S|)} 1[y_{a_j(S)} = y]``, where
    ``a_j(S)`` is the j-th nearest point of ``S`` to ``v`` (Euclidean; ties
    broken by training index). Jia et al. (2019, Theorem 1) give its Shapley
    values in closed form: with the training points sorted by distance,
    ``a_1`` nearest, ``a_N`` farthest, and 1-based ``i``::

        s[a_N] = 1[y_{a_N} = y] / N                      (K <= N; 1[...] / K if K > N)
        s[a_i] = s[a_{i+1}] + (1[y_{a_i} = y] - 1[y_{a_{i+1}} = y]) / K * min(K, i) / i

    The result is the mean over validation points. The recursion is evaluated
    as a reversed cumulative sum, vectorised over a chunk of validation points
    at a time (``chunk_cells`` bounds the chunk's rows x N), so memory does not
    grow with the validation set.

    For unit-norm embeddings, Euclidean order is cosine order.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    tx = np.asarray(train_x, dtype=np.float64)
    vx = np.asarray(val_x, dtype=np.float64)
    ty = np.asarray(train_y)
    vy = np.asarray(val_y)
    if tx.ndim != 2 or vx.ndim != 2 or tx.shape[1] != vx.shape[1]:
        raise ValueError(f"train_x {tx.shape} and val_x {vx.shape} must be 2-D with equal widths")
    n, m = tx.shape[0], vx.shape[0]
    if ty.shape != (n,) or vy.shape != (m,):
        raise ValueError("train_y and val_y must have one label per row")
    values = np.zeros(n, dtype=np.float64)
    if n == 0 or m == 0:
        return values

    i = np.arange(1, n, dtype=np.float64)  # 1-based rank of the nearer point in each step
    step_weight = np.minimum(k, i) / (k * i)
    # The paper's base case 1[match]/N assumes K <= N; min(K, N)/(K N) also
    # covers K > N, where every point is always among the K nearest and its
    # value is simply 1[match]/K.
    base_weight = min(k, n) / (k * n)
    train_sq = np.einsum("ij,ij->i", tx, tx)
    rows_per_chunk = max(1, chunk_cells // n)
    for start in range(0, m, rows_per_chunk):
        stop = min(m, start + rows_per_chunk)
        dist = _squared_distances(vx[start:stop], tx, train_sq)
        order = np.argsort(dist, axis=1, kind="stable")  # stable: ties go to the lower index
        match = (ty[order] == vy[start:stop, None]).astype(np.float64)
        s = np.empty_like(match)
        s[:, -1] = match[:, -1] * base_weight
        if n > 1:
            steps = (match[:, :-1] - match[:, 1:]) * step_weight
            # s[i] = s[N] + sum_{j >= i} steps[j]: a cumulative sum from the far end.
            s[:, :-1] = s[:, -1:] + np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]
        per_point = np.zeros_like(s)
        np.put_along_axis(per_point, order, s, axis=1)
        values += per_point.sum(axis=0)
    return values / m


def knn_utility(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    val_x: npt.ArrayLike,
    val_y: npt.ArrayLike,
    k: int,
) -> float:
    """The utility :func:`knn_shapley` splits: mean over validation points of
    the share of the ``K`` nearest training points (fewer if ``N < K``, still
    divided by ``K``) that carry the validation label; 0 for no training data.
    Used by tests and to report how much a campaign's value adds up to."""
    tx = np.asarray(train_x, dtype=np.float64)
    vx = np.asarray(val_x, dtype=np.float64)
    if tx.shape[0] == 0 or vx.shape[0] == 0:
        return 0.0
    ty, vy = np.asarray(train_y), np.asarray(val_y)
    dist = _squared_distances(vx, tx, np.einsum("ij,ij->i", tx, tx))
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return float((ty[nearest] == vy[:, None]).sum(axis=1).mean() / k)


# --------------------------------------------------------------------------
# Preference pairs
# --------------------------------------------------------------------------


def pair_features(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    prompt: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Features of a pair of responses: ``emb(first) - emb(second)``, with
    ``emb(prompt)`` in front when given.

    The difference is what Bradley-Terry sees; the prompt places the pair in
    its topic, so that judgments on one kind of question are valued against
    validation pairs on the same kind of question.
    """
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"first {a.shape} and second {b.shape} must be equal 2-D shapes")
    diff = a - b
    if prompt is None:
        return diff
    p = np.asarray(prompt, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != a.shape[0]:
        raise ValueError(f"prompt {p.shape} must have one row per pair")
    return np.hstack([p, diff])


def mirror_pairs(features: np.ndarray, labels: np.ndarray, prompt_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The same judgments read the other way round: difference negated, label
    flipped, prompt part unchanged."""
    mirrored = np.array(features, dtype=np.float64, copy=True)
    mirrored[:, prompt_dim:] *= -1.0
    return mirrored, 1.0 - labels


@dataclass(frozen=True)
class ContributorValue:
    """One contributor's share of the validation utility."""

    total: float
    mean: float
    count: int


@dataclass(frozen=True)
class PairValuation:
    """Per-pair values (in input order) and their sums and means per contributor."""

    per_pair: np.ndarray
    by_contributor: dict[Hashable, ContributorValue]


def pair_values(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    contributor_ids: Sequence[Hashable] | np.ndarray,
    val_features: npt.ArrayLike,
    val_labels: npt.ArrayLike,
    *,
    k: int = 10,
    prompt_dim: int = 0,
    chunk_cells: int = _KNN_CHUNK_CELLS,
) -> PairValuation:
    """KNN-Shapley value of each preference judgment, summed per contributor.

    ``features`` are :func:`pair_features` rows (``prompt_dim`` leading columns
    of prompt embedding, 0 for none); ``labels[i]`` is 1 when the first
    response of row ``i`` was preferred (so chosen-minus-rejected rows all have
    label 1). Validation pairs are given the same way.

    A judgment reads the same both ways round ("A over B" is "B under A"), but
    a nearest-neighbour model does not know that: a training pair stored as
    ``A - B`` lies far from a validation pair stored as ``B - A``. So the
    training set holds every judgment in both readings, and a judgment's value
    is the sum of its two readings' Shapley values. Because that training set
    is symmetric, scoring only the validation pairs as given is exact: the
    mirrored validation point would rank the mirrored training points the same
    way and give the same values (up to exact distance ties). The sum of two points' Shapley values is the
    standard (additive) approximation of the value of the pair as one player.
    """
    x = np.asarray(features, dtype=np.float64)
    vx = np.asarray(val_features, dtype=np.float64)
    if x.ndim != 2 or vx.ndim != 2 or x.shape[1] != vx.shape[1]:
        raise ValueError(f"features {x.shape} and val_features {vx.shape} must be 2-D with equal widths")
    if not 0 <= prompt_dim < x.shape[1]:
        raise ValueError("prompt_dim must leave some difference columns")
    y = _as_direction(labels, x.shape[0])
    vy = _as_direction(val_labels, vx.shape[0])
    owners = list(contributor_ids)
    if len(owners) != x.shape[0]:
        raise ValueError("contributor_ids must have one id per pair")

    mx, my = mirror_pairs(x, y, prompt_dim)
    both = knn_shapley(
        np.vstack([x, mx]), np.concatenate([y, my]), vx, vy, k, chunk_cells=chunk_cells
    )
    n = x.shape[0]
    per_pair = both[:n] + both[n:]

    # Group by the caller's own ids (any hashables; 1 and "1" stay apart).
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(o, len(index)) for o in owners), dtype=np.int64, count=n)
    totals = np.bincount(codes, weights=per_pair, minlength=len(index))
    counts = np.bincount(codes, minlength=len(index))
    by_contributor = {
        owner: ContributorValue(
            total=float(totals[code]), mean=float(totals[code] / counts[code]), count=int(counts[code])
        )
        for owner, code in index.items()
    }
    return PairValuation(per_pair=per_pair, by_contributor=by_contributor)
