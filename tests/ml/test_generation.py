"""Candidate responses from a local checkpoint: a tiny random GPT-2 built here."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="generation needs torch (requirements-ml.txt)")
pytest.importorskip("transformers", reason="generation needs transformers (requirements-ml.txt)")
pytest.importorskip("tokenizers", reason="the test tokenizer is built with the tokenizers library")

from datavalue.generation import (  # noqa: E402
    CheckpointError,
    GeneratedResponse,
    GenerationCancelled,
    generate_responses,
    load_causal_lm,
    render_prompt,
)
from tests.ml import CHAT_TEMPLATE, build_tiny_gpt2  # noqa: E402

PROMPTS = ["the patient should take", "response a is better because", "please summarise the contract"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def chat_checkpoint(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_chat_gpt2"), chat_template=CHAT_TEMPLATE)


def test_k_samples_per_prompt_with_their_settings_recorded(checkpoint):
    results = generate_responses(checkpoint, PROMPTS, 3, max_new_tokens=12, temperature=0.7, top_p=0.9, seed=5)
    assert len(results) == len(PROMPTS)
    for prompt_index, samples in enumerate(results):
        assert [s.sample_index for s in samples] == [0, 1, 2]
        for sample in samples:
            assert isinstance(sample, GeneratedResponse)
            assert sample.prompt_index == prompt_index
            assert (sample.seed, sample.temperature, sample.top_p, sample.max_new_tokens) == (
                5 + prompt_index,
                0.7,
                0.9,
                12,
            )
            assert 0 <= sample.new_tokens <= 12
            assert sample.finish_reason == ("length" if sample.new_tokens == 12 else "stop")
            assert sample.checkpoint == str(checkpoint)
            assert "<|endoftext|>" not in sample.text
    # A random model over a 50-word vocabulary does not repeat itself three times.
    assert len({s.text for samples in results for s in samples}) > 3


def test_same_seed_same_texts_and_the_global_rng_is_untouched(checkpoint):
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    first = generate_responses(checkpoint, PROMPTS[:2], 2, max_new_tokens=10, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = generate_responses(checkpoint, PROMPTS[:2], 2, max_new_tokens=10, seed=7)
    other = generate_responses(checkpoint, PROMPTS[:2], 2, max_new_tokens=10, seed=8)

    def texts(results):
        return [[s.text for s in samples] for samples in results]

    assert texts(first) == texts(again)
    assert texts(first) != texts(other)
    # One prompt re-sampled alone with its recorded seed gives the same texts.
    alone = generate_responses(checkpoint, PROMPTS[1:2], 2, max_new_tokens=10, seed=first[1][0].seed)
    assert texts(alone)[0] == texts(first)[1]


def test_progress_is_reported_per_prompt(checkpoint):
    calls = []
    generate_responses(
        checkpoint, PROMPTS, 1, max_new_tokens=4, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_cancel_between_prompts(checkpoint):
    calls = []

    def progress(done, total):
        calls.append(done)

    with pytest.raises(GenerationCancelled) as info:
        generate_responses(
            checkpoint, PROMPTS, 2, max_new_tokens=4, progress=progress, should_cancel=lambda: len(calls) >= 2
        )
    assert (info.value.done, info.value.total) == (1, 3)
    assert calls == [0, 1]


def test_cancel_during_decoding(checkpoint):
    polls = []

    def should_cancel():
        polls.append(1)
        return len(polls) > 3  # the first prompt's check, then decoding steps

    with pytest.raises(GenerationCancelled) as info:
        generate_responses(checkpoint, PROMPTS, 2, max_new_tokens=50, should_cancel=should_cancel)
    assert info.value.done == 0
    assert len(polls) < 10  # stopped within a step, not after 50 tokens


def test_chat_template_is_applied_when_the_tokenizer_has_one(chat_checkpoint, checkpoint):
    chat_tokenizer, _ = load_causal_lm(chat_checkpoint)
    assert render_prompt(chat_tokenizer, "the patient") == "<|user|> the patient <|assistant|>"
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the dose"}]
    assert render_prompt(chat_tokenizer, messages) == "<|system|> be brief <|user|> the dose <|assistant|>"
    plain_tokenizer, _ = load_causal_lm(checkpoint)
    assert render_prompt(plain_tokenizer, "the patient") == "the patient"
    assert render_prompt(plain_tokenizer, messages) == "System: be brief\n\nUser: the dose\n\nAssistant:"
    results = generate_responses(chat_checkpoint, [messages, "the patient"], 2, max_new_tokens=6)
    assert [len(samples) for samples in results] == [2, 2]


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        generate_responses(tmp_path / "nope", PROMPTS, 1)


def test_directory_without_a_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="config.json"):
        load_causal_lm(tmp_path)


def test_unknown_and_non_causal_architectures(tmp_path):
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(CheckpointError, match="unsupported architecture"):
        load_causal_lm(unknown)

    from transformers import ViTConfig

    vision = tmp_path / "vision"
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
        str(vision)
    )
    with pytest.raises(CheckpointError, match="not a causal language model"):
        load_causal_lm(vision)


def test_missing_tokenizer(tmp_path):
    directory = build_tiny_gpt2(tmp_path / "no_tokenizer", with_tokenizer=False)
    with pytest.raises(CheckpointError, match="no tokenizer"):
        generate_responses(directory, PROMPTS, 1)


def test_missing_or_corrupt_weights(tmp_path):
    directory = build_tiny_gpt2(tmp_path / "no_weights")
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="cannot load model weights"):
        load_causal_lm(directory)
    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot load model weights"):
        load_causal_lm(directory)


def test_bad_sampling_settings_are_refused_before_loading(checkpoint):
    for kwargs in ({"temperature": 0}, {"top_p": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}):
        with pytest.raises(ValueError):
            generate_responses(checkpoint, PROMPTS, 1, **kwargs)
    with pytest.raises(ValueError):
        generate_responses(checkpoint, PROMPTS, 0)
