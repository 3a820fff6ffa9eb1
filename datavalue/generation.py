"""Candidate responses for prompt-only uploads, sampled from a local checkpoint.

A lab may upload prompts without responses and name a checkpoint directory the
platform holds; a Celery job calls :func:`generate_responses` to sample ``k``
responses per prompt for the experts to rank. Only local files are read
(``local_files_only=True``), and never the checkpoint's own Python
(``trust_remote_code=False``): the directory comes from outside.

Each :class:`GeneratedResponse` records how it was sampled (seed, temperature,
top-p, token budget, why it stopped), so a ranking can later be tied to the
exact decoding that produced it and the run can be repeated.

The job reports progress through a ``(done, total)`` callback and stops when
``should_cancel()`` turns true (checked between prompts and between decoding
steps), raising :class:`GenerationCancelled` so the caller can mark the job
cancelled without storing a half-finished prompt. No Django import here.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from annotations.tokenization import TokenizerError, apply_chat_template, has_chat_template, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Prompt = str | Sequence[Mapping[str, Any]]
ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class CheckpointError(ValueError):
    """The checkpoint directory cannot be used for generation; the message says why."""


class GenerationCancelled(Exception):
    """``should_cancel()`` asked to stop; ``done`` prompts had been completed."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"generation cancelled after {done} of {total} prompts")
        self.done = done
        self.total = total


@dataclass(frozen=True)
class GeneratedResponse:
    """One sampled response and the settings that produced it."""

    text: str
    prompt_index: int
    sample_index: int
    seed: int
    temperature: float
    top_p: float
    max_new_tokens: int
    new_tokens: int
    finish_reason: Literal["stop", "length"]
    checkpoint: str


def load_causal_lm(checkpoint_path: str | os.PathLike[str]) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and causal LM from a local directory, in eval mode.

    Raises :class:`CheckpointError` for a missing directory, a directory with
    no ``config.json``, a model type transformers does not know or that is not
    a causal language model, missing weights, or a missing tokenizer, each
    with a message a moderator can act on.
    """
    directory = Path(checkpoint_path)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory} has no config.json; is it a transformers checkpoint?")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
    except (ValueError, KeyError, OSError) as exc:
        raise CheckpointError(f"unsupported architecture in {directory}: {exc}") from exc
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise CheckpointError(
            f"unsupported architecture {config.model_type!r} in {directory}: not a causal language model"
        )
    try:
        tokenizer = load_tokenizer(directory)
    except TokenizerError as exc:
        raise CheckpointError(f"no tokenizer in {directory}: {exc}") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(directory), config=config, local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:  # noqa: BLE001 - missing, truncated or foreign weight files all mean a bad checkpoint
        raise CheckpointError(f"cannot load model weights from {directory}: {exc}") from exc
    model.eval()
    return tokenizer, model


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> str:
    """The text the model continues: the chat template with a generation
    prompt when the tokenizer has one (a plain string becomes one user
    message), else the string itself or the plain chat format of
    ``annotations.tokenization``."""
    if isinstance(prompt, str):
        if not has_chat_template(tokenizer):
            return prompt
        messages: Sequence[Mapping[str, Any]] = [{"role": "user", "content": prompt}]
    else:
        messages = prompt
    return apply_chat_template(tokenizer, messages, add_generation_prompt=True)


def _cancel_criteria(should_cancel: CancelCheck | None) -> list[Any]:
    if should_cancel is None:
        return []
    import torch
    from transformers import StoppingCriteria

    check: CancelCheck = should_cancel

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            stop = bool(check())
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return [_Cancel()]


def generate_responses(
    checkpoint_path: str | os.PathLike[str],
    prompts: Sequence[Prompt],
    k: int,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> list[list[GeneratedResponse]]:
    """Sample ``k`` responses for each prompt; one inner list per prompt, in order.

    Prompt ``i`` is sampled with the torch seed ``seed + i`` (all ``k``
    samples in one ``generate`` call with ``num_return_sequences=k``), inside
    ``torch.random.fork_rng`` so the worker's global RNG is left as it was.
    The same checkpoint, prompts and settings therefore give the same texts,
    and a single prompt can be re-sampled alone with its recorded seed.

    ``progress(done, total)`` is called with ``(0, total)`` first and after
    each prompt. ``should_cancel()`` is polled before each prompt and at every
    decoding step; when it returns true, :class:`GenerationCancelled` is
    raised and no partial result is returned.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if temperature <= 0:
        raise ValueError("temperature must be positive (sampling only)")
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    import torch

    tokenizer, model = load_causal_lm(checkpoint_path)
    checkpoint = str(Path(checkpoint_path))
    eos_ids = _eos_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
    stopping = _cancel_criteria(should_cancel)
    total = len(prompts)
    results: list[list[GeneratedResponse]] = []
    if progress is not None:
        progress(0, total)
    for index, prompt in enumerate(prompts):
        if should_cancel is not None and should_cancel():
            raise GenerationCancelled(index, total)
        text = render_prompt(tokenizer, prompt)
        # A chat template already holds BOS and role tokens; a raw prompt gets
        # whatever special tokens the tokenizer adds by default.
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=not has_chat_template(tokenizer))
        prompt_len = enc["input_ids"].shape[1]
        if prompt_len == 0:
            raise CheckpointError("the tokenizer turned a prompt into no tokens; it needs a BOS token")
        prompt_seed = seed + index
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(prompt_seed)
            output = model.generate(  # type: ignore[operator]  # nn.Module typing hides generate
                **enc,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                top_k=0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=k,
                pad_token_id=pad_id,
                eos_token_id=eos_ids or None,
                stopping_criteria=stopping,
            )
        if should_cancel is not None and should_cancel():
            raise GenerationCancelled(index, total)
        samples = []
        for sample_index, row in enumerate(output[:, prompt_len:].tolist()):
            new_ids, finish = _trim(row, eos_ids)
            samples.append(
                GeneratedResponse(
                    text=str(tokenizer.decode(new_ids, skip_special_tokens=True)).strip(),
                    prompt_index=index,
                    sample_index=sample_index,
                    seed=prompt_seed,
                    temperature=temperature,
                    top_p=top_p,
                    max_new_tokens=max_new_tokens,
                    new_tokens=len(new_ids),
                    finish_reason=finish,
                    checkpoint=checkpoint,
                )
            )
        results.append(samples)
        if progress is not None:
            progress(index + 1, total)
    return results


def _eos_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids: list[int] = []
    for value in (configured, tokenizer.eos_token_id):
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if item not in ids:
                ids.append(int(item))
    return ids


def _trim(row: list[int], eos_ids: list[int]) -> tuple[list[int], Literal["stop", "length"]]:
    """New tokens up to (not including) the first EOS. ``generate`` pads
    finished sequences of a batch, so padding after the EOS is dropped too."""
    for position, token in enumerate(row):
        if token in eos_ids:
            return row[:position], "stop"
    return row, "length"
