"""Helpers the PostgreSQL benchmarks share: their own database, and synthetic text."""
from __future__ import annotations

import random
import subprocess

import numpy as np


def create_database(name: str) -> None:
    """Create the benchmark's own database on the local server if it is missing."""
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "root", "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True, check=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "root", "-d", "postgres", "-c",
                        f"CREATE DATABASE {name}"], check=True)


def random_texts(rng: np.random.Generator, n: int, low: int, high: int) -> list[str]:
    """``n`` texts of ``low..high`` words cut from one long random text (fast to build)."""
    r = random.Random(int(rng.integers(1 << 30)))
    vocab = ["".join(r.choices("abcdefghijklmnopqrstuvwxyz", k=r.randint(2, 9))) for _ in range(5000)]
    words = r.choices(vocab, k=2_000_000)
    lengths = rng.integers(low, high + 1, n)
    starts = rng.integers(0, len(words) - high, n)
    return [" ".join(words[s : s + n_words]) for s, n_words in zip(starts.tolist(), lengths.tolist())]
