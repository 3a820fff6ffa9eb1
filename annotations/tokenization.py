"""Tokenizer-aware export: the target model's chat template, token counts, and
which rows a DPO trainer would truncate.

A lab names the tokenizer of the model it will train (a local directory the
platform was given; nothing is fetched from a hub). The export renders each
prompt with that tokenizer's chat template, counts tokens, and drops or flags
rows longer than the lab's ``max_tokens`` (:func:`over_length`), so the
dataset card can say how many rows a trainer would have cut.

No Django import; transformers is imported lazily.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Message = Mapping[str, Any]


class TokenizerError(ValueError):
    """The named tokenizer cannot be loaded from local files."""


# Files of which a saved tokenizer has at least one (fast, BPE, WordPiece and
# SentencePiece formats).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory only (``local_files_only=True``,
    no remote code: the directory comes from a lab, so its Python must not run).

    Raises :class:`TokenizerError` naming the path when the directory is
    missing or holds no tokenizer. The file check comes first because
    transformers 5 builds an *empty* tokenizer from a model's ``config.json``
    alone (every text then counts as zero tokens), which must not pass for a
    real one.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise TokenizerError(f"tokenizer directory {directory} does not exist")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerError(f"no tokenizer files in {directory} (expected one of {', '.join(TOKENIZER_FILES)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenizerError(f"no usable tokenizer in {directory}: {exc}") from exc
    if isinstance(tokenizer, bool) or not callable(getattr(tokenizer, "encode", None)):
        raise TokenizerError(f"no usable tokenizer in {directory}")
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise TokenizerError(f"the tokenizer in {directory} has an empty vocabulary")
    return tokenizer


def count_tokens(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    add_special_tokens: bool = False,
    batch_size: int = 1024,
) -> np.ndarray:
    """Number of tokens of each text, as an int64 array.

    ``add_special_tokens`` is off by default because text rendered with
    :func:`apply_chat_template` already holds the template's special tokens;
    turn it on for raw text that the trainer will tokenize with BOS/EOS added.
    Batched so a fast (Rust) tokenizer runs in parallel over each batch.
    """
    if isinstance(texts, str):
        raise TypeError("count_tokens() takes a sequence of texts, not one string")
    counts = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        encoded = tokenizer(batch, add_special_tokens=add_special_tokens, truncation=False)["input_ids"]
        counts[start : start + len(batch)] = [len(ids) for ids in encoded]
    return counts


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer carries a chat template of its own."""
    return bool(getattr(tokenizer, "chat_template", None))


def plain_chat_format(messages: Sequence[Message], *, add_generation_prompt: bool = False) -> str:
    """The documented fallback for tokenizers without a chat template.

    Each message becomes ``"<Role>: <content>"`` (role capitalised: ``System``,
    ``User``, ``Assistant``), messages are separated by one blank line, and
    with ``add_generation_prompt`` a final ``"Assistant:"`` invites the reply.
    It is the format base models see most often in pretraining data, it is
    stable (exports made today and in a year render the same bytes), and it
    keeps role boundaries readable in the exported file.
    """
    parts = [f"{str(m['role']).capitalize()}: {m['content']}" for m in messages]
    if add_generation_prompt:
        parts.append("Assistant:")
    return "\n\n".join(parts)


def _validate_messages(messages: Sequence[Message]) -> None:
    if isinstance(messages, str):
        raise TypeError("messages must be a list of {'role', 'content'} mappings, not a string")
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ValueError(f"message {position} needs 'role' and 'content'")


def apply_chat_template(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = False,
) -> str:
    """Render ``messages`` as the text the target model is trained on.

    Uses the tokenizer's own chat template when it has one, else
    :func:`plain_chat_format`. Returns text (not token ids) so the export can
    both store it and count it with :func:`count_tokens`.
    """
    _validate_messages(messages)
    if has_chat_template(tokenizer):
        rendered = tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(rendered)
    return plain_chat_format(messages, add_generation_prompt=add_generation_prompt)


def over_length(
    prompt_tokens: npt.ArrayLike,
    chosen_tokens: npt.ArrayLike,
    rejected_tokens: npt.ArrayLike,
    max_tokens: int,
    *,
    max_prompt_tokens: int | None = None,
) -> np.ndarray:
    """Rows a TRL DPO trainer would truncate, as a boolean mask.

    The rule follows ``trl.DPOTrainer`` with ``DPOConfig(max_length=max_tokens)``
    (TRL 1.x; ``truncation_mode="keep_start"``, the default and, since
    ``"keep_end"`` was deprecated, the only mode): the trainer builds
    ``prompt + chosen`` and ``prompt + rejected`` and cuts each to its first
    ``max_length`` tokens. A row therefore loses tokens exactly when

        prompt + max(chosen, rejected) > max_tokens

    and what it loses is the end of the longer response (all of it when the
    prompt alone reaches ``max_tokens``, leaving nothing to learn from).

    ``max_prompt_tokens`` reproduces older TRL releases (before 1.0) whose
    ``DPOConfig`` also had ``max_prompt_length``: the prompt was first cut to
    that many tokens whatever the total, so a longer prompt is flagged too.

    Counts should include what the trainer adds (the template's special tokens,
    an EOS after each response), i.e. come from :func:`count_tokens` on the
    rendered text.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    prompt = np.asarray(prompt_tokens, dtype=np.int64)
    longest = np.maximum(np.asarray(chosen_tokens, dtype=np.int64), np.asarray(rejected_tokens, dtype=np.int64))
    flagged = prompt + longest > max_tokens
    if max_prompt_tokens is not None:
        flagged = flagged | (prompt > max_prompt_tokens)
    return np.asarray(flagged, dtype=bool)
