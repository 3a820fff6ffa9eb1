"""Tokenizer-aware pair rows: the target model's chat template, token counts as TRL counts them, and
the over-length rule of :func:`annotations.tokenization.over_length` (no Django).

Counts follow TRL 1.x's ``DPOTrainer`` preprocessing exactly, so the export
can say which rows the trainer would cut:

* conversational rows: ``prompt_ids`` = the chat template of the prompt with
  the generation prompt, tokenized without special tokens (what
  ``apply_chat_template(tokenize=True)`` does); ``prompt+chosen`` = the
  template of the whole conversation;
* standard rows: TRL appends the EOS token to ``chosen`` and ``rejected``
  (unless they already end with it) and tokenizes ``prompt`` and
  ``prompt + chosen`` with the tokenizer's special tokens;
* the prompt is the common prefix of those token lists, and
  ``chosen_tokens`` / ``rejected_tokens`` what follows it.

So ``prompt_tokens + chosen_tokens`` is the length of the sequence the
trainer builds, and a row is over length when either of its two sequences
exceeds ``max_tokens`` (``DPOConfig(max_length=max_tokens)``, keep-start
truncation; the reward trainer drops the same rows).
"""
from __future__ import annotations

from collections import Counter
from itertools import takewhile
from typing import Any

import numpy as np

from annotations import tokenization
from exports.formats import DROP_OVER_LENGTH, FLAG_OVER_LENGTH, Pair, prompt_messages

BATCH = 512


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class PairTokens:
    """Renders and counts pair rows with one loaded tokenizer."""

    def __init__(self, tokenizer, *, conversational: bool, max_tokens: int | None, flag: bool):
        self.tokenizer = tokenizer
        self.conversational = conversational
        self.max_tokens = max_tokens
        self.flag = flag

    def _template(self, messages: list[dict[str, str]], *, generation: bool) -> str:
        return tokenization.apply_chat_template(self.tokenizer, messages, add_generation_prompt=generation)

    def _conversation(self, pair: Pair) -> tuple[str, str, str]:
        """(prompt, prompt + chosen, prompt + rejected) rendered by the chat template."""
        messages = prompt_messages(pair.task.prompt)
        # A prompt ending on an assistant turn is continued, not answered anew.
        generation = messages[-1]["role"] != "assistant"
        chosen = {"role": "assistant", "content": pair.task.texts[pair.chosen]}
        rejected = {"role": "assistant", "content": pair.task.texts[pair.rejected]}
        return (
            self._template(messages, generation=generation),
            self._template([*messages, chosen], generation=False),
            self._template([*messages, rejected], generation=False),
        )

    def render(self, pair: Pair) -> tuple[str, str, str]:
        """The standard-format strings TRL's ``maybe_apply_chat_template`` makes of this pair's
        conversational row: the templated prompt, and each completion as rendered after it."""
        prompt, prompt_chosen, prompt_rejected = self._conversation(pair)
        for full in (prompt_chosen, prompt_rejected):
            prompt = "".join(x for x, _ in takewhile(lambda xy: xy[0] == xy[1], zip(prompt, full)))
        return prompt, prompt_chosen[len(prompt):], prompt_rejected[len(prompt):]

    def _ids(self, texts: list[str], *, special: bool) -> list[list[int]]:
        out: list[list[int]] = []
        for start in range(0, len(texts), BATCH):
            out += self.tokenizer(texts[start:start + BATCH], add_special_tokens=special, truncation=False)["input_ids"]
        return out

    def annotate(self, pairs: list[Pair], rows: list[dict[str, Any]], counts: Counter) -> list[bool]:
        """Add ``prompt_tokens``, ``chosen_tokens``, ``rejected_tokens`` (and ``over_length`` when
        flagging) to ``rows``, built from ``pairs``; returns which rows to keep (an over-length row is
        dropped unless flagging)."""
        if not rows:
            return []
        if self.conversational:
            rendered = [self._conversation(pair) for pair in pairs]
            prompts = [r[0] for r in rendered]
            with_chosen = [r[1] for r in rendered]
            with_rejected = [r[2] for r in rendered]
            special = False
        else:
            eos = self.tokenizer.eos_token or ""
            prompts = [row["prompt"] for row in rows]

            def ended(text: str) -> str:
                return text if not eos or text.endswith(eos) else text + eos

            with_chosen = [row["prompt"] + ended(row["chosen"]) for row in rows]
            with_rejected = [row["prompt"] + ended(row["rejected"]) for row in rows]
            special = True
        prompt_ids = self._ids(prompts, special=special)
        chosen_ids = self._ids(with_chosen, special=special)
        rejected_ids = self._ids(with_rejected, special=special)
        n = len(rows)
        prompt_len = np.empty(n, dtype=np.int64)
        chosen_len = np.empty(n, dtype=np.int64)
        rejected_len = np.empty(n, dtype=np.int64)
        for r in range(n):
            p = min(_common_prefix(prompt_ids[r], chosen_ids[r]), _common_prefix(prompt_ids[r], rejected_ids[r]))
            prompt_len[r] = p
            chosen_len[r] = len(chosen_ids[r]) - p
            rejected_len[r] = len(rejected_ids[r]) - p
        if self.max_tokens is not None:
            over = tokenization.over_length(prompt_len, chosen_len, rejected_len, self.max_tokens)
        else:
            over = np.zeros(n, dtype=bool)
        keep = []
        for r, row in enumerate(rows):
            row["prompt_tokens"] = int(prompt_len[r])
            row["chosen_tokens"] = int(chosen_len[r])
            row["rejected_tokens"] = int(rejected_len[r])
            if self.flag:
                row["over_length"] = bool(over[r])
                counts[FLAG_OVER_LENGTH] += int(over[r])
                keep.append(True)
            else:
                counts[DROP_OVER_LENGTH] += int(over[r])
                keep.append(not over[r])
        return keep
