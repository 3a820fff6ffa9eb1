"""Near-duplicate responses, copied rationales and repeated prompts."""
from __future__ import annotations

import numpy as np
import pytest

import annotations.similarity as similarity
from annotations.similarity import duplicate_prompts, near_copies, near_duplicate_pairs, normalise_rows


def unit(rng, n, d=16):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def with_cosine(base, cosine, rng):
    """A vector at exactly ``cosine`` to the unit vector ``base``."""
    other = rng.normal(size=base.shape)
    other -= (other @ base) * base
    other /= np.linalg.norm(other)
    return cosine * base + np.sqrt(1 - cosine**2) * other


def test_near_duplicate_pairs_flags_tasks_whose_responses_say_the_same():
    rng = np.random.default_rng(0)
    a = unit(rng, 4)
    b = np.vstack([with_cosine(a[0], 0.99, rng), with_cosine(a[1], 0.96, rng), a[2] * 3.0, -a[3]])
    # Scaling does not matter (rows are normalised); the threshold is inclusive.
    np.testing.assert_array_equal(near_duplicate_pairs(a, b), [True, False, True, False])
    np.testing.assert_array_equal(near_duplicate_pairs(a, b, threshold=0.95), [True, True, True, False])
    with pytest.raises(ValueError):
        near_duplicate_pairs(a, b[:3])


def test_zero_vectors_are_never_duplicates():
    zeros = np.zeros((2, 4))
    assert not near_duplicate_pairs(zeros, zeros).any()
    np.testing.assert_array_equal(normalise_rows(zeros), zeros)
    np.testing.assert_array_equal(duplicate_prompts(zeros), [-1, -1])


def brute_near_copies(x, groups, owners, threshold):
    x = normalise_rows(x)
    found = []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if groups[i] == groups[j] and owners[i] != owners[j] and x[i] @ x[j] >= threshold:
                found.append((i, j))
    return found


def planted_rationales(seed, tasks=60, per_task=(1, 2, 3, 5), d=16):
    """Rationales for many tasks; in some tasks one expert copies another's
    (a small perturbation), and one prolific expert writes the same text on
    two different tasks (not a copy: different tasks)."""
    rng = np.random.default_rng(seed)
    rows, groups, owners = [], [], []
    for task in range(tasks):
        size = per_task[task % len(per_task)]
        vectors = unit(rng, size, d)
        if size > 1 and task % 3 == 0:
            vectors[1] = vectors[0] + 0.05 * rng.normal(size=d)
        rows.append(vectors)
        groups.extend([f"t{task}"] * size)
        owners.extend(rng.choice(["ann", "bob", "cat", "dan", "eve", "fay"], size=size, replace=False).tolist())
    x = np.vstack(rows)
    order = rng.permutation(len(x))  # rows of one task need not be adjacent
    return x[order], [groups[i] for i in order], [owners[i] for i in order]


@pytest.mark.parametrize("tile_cells", [4_000_000, 9, 4])
def test_near_copies_matches_brute_force(monkeypatch, tile_cells):
    # Small tiles force the batch-chunking and the large-group paths.
    monkeypatch.setattr(similarity, "_TILE_CELLS", tile_cells)
    x, groups, owners = planted_rationales(1)
    result = near_copies(x, groups, owners, threshold=0.9)
    expected = brute_near_copies(x, groups, owners, 0.9)
    assert len(expected) >= 10
    assert list(zip(result.left.tolist(), result.right.tolist())) == expected
    xn = normalise_rows(x)
    np.testing.assert_allclose(result.similarity, [xn[i] @ xn[j] for i, j in expected], atol=1e-5)


def test_near_copies_ignores_same_owner_and_other_tasks():
    rng = np.random.default_rng(2)
    v = unit(rng, 1)[0]
    x = np.vstack([v, v, v, v])
    groups = ["t1", "t1", "t2", "t1"]
    owners = ["ann", "ann", "bob", "cat"]
    result = near_copies(x, groups, owners)
    assert list(zip(result.left.tolist(), result.right.tolist())) == [(0, 3), (1, 3)]
    assert len(near_copies(x[:1], groups[:1], owners[:1])) == 0
    with pytest.raises(ValueError):
        near_copies(x, groups[:3], owners)


def brute_duplicates(x, threshold):
    x = normalise_rows(x)
    out = []
    for i in range(len(x)):
        earlier = [j for j in range(i) if x[i] @ x[j] >= threshold]
        out.append(earlier[0] if earlier else -1)
    return out


@pytest.mark.parametrize("block", [1, 3, 7, 2048])
def test_duplicate_prompts_points_at_the_first_earlier_match(block):
    rng = np.random.default_rng(3)
    x = unit(rng, 40)
    x[10] = x[2] + 0.01 * rng.normal(size=16)
    x[25] = x[2] + 0.01 * rng.normal(size=16)  # a second repeat points at the first row too
    x[31] = x[30]  # an adjacent exact repeat, inside one tile
    x[39] = x[10]
    result = duplicate_prompts(x, threshold=0.95, block=block)
    assert result.tolist() == brute_duplicates(x, 0.95)
    assert result[10] == 2 and result[25] == 2 and result[31] == 30 and result[39] == 2
    assert (result[result >= 0] < np.flatnonzero(result >= 0)).all()


def test_duplicate_prompts_of_nothing_and_of_one():
    assert duplicate_prompts(np.zeros((0, 8))).shape == (0,)
    assert duplicate_prompts(np.ones((1, 8))).tolist() == [-1]
