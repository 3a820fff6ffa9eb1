"""Tokenizer-aware exports, checked against TRL itself on a tiny model built here (nothing from a hub)."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("transformers", reason="tokenizer-aware export needs transformers (requirements-ml.txt)")
pytest.importorskip("tokenizers")
trl = pytest.importorskip("trl", reason="the export is checked against TRL's own preprocessing")
datasets = pytest.importorskip("datasets")

from exports import formats  # noqa: E402
from tests import factories  # noqa: E402
from tests.exports.export_data import build, export_path, read_jsonl  # noqa: E402
from tests.ml import CHAT_TEMPLATE, TINY_CORPUS, build_tiny_gpt2  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_chat_gpt2")
    build_tiny_gpt2(directory, chat_template=CHAT_TEMPLATE)
    return directory


@pytest.fixture(autouse=True)
def _export_settings(settings, tmp_path, model_dir):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")
    settings.DATADAO_TOKENIZER_ROOTS = [str(model_dir)]
    settings.DATADAO_TOKENIZERS = {"tiny-chat": str(model_dir)}


@pytest.fixture
def campaign(lab):
    """Six K=2 tasks in the tiny tokenizer's words, of varied lengths; two have chat prompts."""
    campaign = factories.open_campaign(lab=lab)
    for n in range(6):
        prompt = " ".join(TINY_CORPUS[n].split()[: 3 + n])
        if n % 3 == 0:
            prompt = [{"role": "system", "content": "please summarise the main finding"},
                      {"role": "user", "content": prompt}]
        task = factories.TaskFactory(campaign=campaign, external_id=f"t{n}", prompt=prompt, responses=[
            " ".join((TINY_CORPUS[(n + 1) % 7] + " " + TINY_CORPUS[(n + 2) % 7]).split()[: 4 + 2 * n]),
            TINY_CORPUS[(n + 3) % 7],
        ])
        factories.consensus_for(task, [1, 2] if n % 2 else [2, 1])
    return campaign


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from annotations.tokenization import load_tokenizer

    return load_tokenizer(model_dir)


def _dpo_trainer(model_dir, dataset, tmp_path, **config):
    from transformers import AutoModelForCausalLM

    from annotations.tokenization import load_tokenizer

    args = trl.DPOConfig(output_dir=str(tmp_path / "dpo"), per_device_train_batch_size=2, max_steps=1,
                         report_to=[], save_strategy="no", use_cpu=True, logging_steps=1, **config)
    return trl.DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(model_dir)), args=args,
                          train_dataset=dataset, processing_class=load_tokenizer(model_dir))


def _dataset(export, tmp_path):
    return datasets.load_dataset("json", data_files={"train": str(export_path(export))}, split="train",
                                 cache_dir=str(tmp_path / "hf-cache"))


def test_standard_rows_are_what_trl_makes_of_the_conversational_rows(campaign, tokenizer):
    conversational = read_jsonl(build(campaign, format=formats.TRL_CONVERSATIONAL, tokenizer="tiny-chat"))
    standard = read_jsonl(build(campaign, format=formats.TRL_PREFERENCE, tokenizer="tiny-chat"))
    assert len(standard) == len(conversational) == 6
    for conv, std in zip(conversational, standard):
        expected = trl.maybe_apply_chat_template({k: conv[k] for k in ("prompt", "chosen", "rejected")}, tokenizer)
        assert {k: std[k] for k in ("prompt", "chosen", "rejected")} == expected
        assert std["prompt"].endswith("<|assistant|>")  # the template's generation prompt


@pytest.mark.parametrize("fmt", [formats.TRL_CONVERSATIONAL, formats.TRL_PREFERENCE, formats.REWARD_PAIRS])
def test_token_counts_are_the_lengths_trl_dpo_tokenizes(campaign, model_dir, tmp_path, fmt):
    export = build(campaign, format=fmt, tokenizer=str(model_dir))  # a path inside the tokenizer roots
    rows = read_jsonl(export)
    trainer = _dpo_trainer(model_dir, _dataset(export, tmp_path), tmp_path)
    processed = trainer.train_dataset
    assert processed.num_rows == len(rows)
    for row, ids in zip(rows, processed):
        assert (row["prompt_tokens"], row["chosen_tokens"], row["rejected_tokens"]) == (
            len(ids["prompt_ids"]), len(ids["chosen_ids"]), len(ids["rejected_ids"]))
    assert export.stats["tokenizer"]["name"] == str(model_dir) and len(export.stats["tokenizer"]["sha256"]) == 64


def test_over_length_rows_are_flagged_or_dropped_as_the_trainer_would_cut_them(campaign):
    flagged = read_jsonl(build(campaign, format=formats.TRL_CONVERSATIONAL, tokenizer="tiny-chat", max_tokens=20,
                               over_length="flag"))
    longest = [r["prompt_tokens"] + max(r["chosen_tokens"], r["rejected_tokens"]) for r in flagged]
    assert [r["over_length"] for r in flagged] == [n > 20 for n in longest]
    assert 0 < sum(r["over_length"] for r in flagged) < len(flagged)  # the fixture straddles the limit
    export = build(campaign, format=formats.TRL_CONVERSATIONAL, tokenizer="tiny-chat", max_tokens=20)
    dropped = read_jsonl(export)
    assert [r["external_id"] for r in dropped] == [r["external_id"] for r in flagged if not r["over_length"]]
    assert "over_length" not in dropped[0]
    assert export.stats["counts"]["over_length_dropped"] == len(flagged) - len(dropped)


def test_one_dpo_step_trains_on_an_export(campaign, model_dir, tmp_path):
    export = build(campaign, format=formats.TRL_CONVERSATIONAL, file_format="parquet")
    dataset = datasets.load_dataset("parquet", data_files={"train": str(export_path(export))}, split="train",
                                    cache_dir=str(tmp_path / "hf-cache"))
    trainer = _dpo_trainer(model_dir, dataset, tmp_path, max_length=64)
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.global_step == 1


def test_reward_trainer_reads_reward_pairs_with_their_margin(campaign, model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from annotations.tokenization import load_tokenizer

    export = build(campaign, format=formats.REWARD_PAIRS)
    dataset = _dataset(export, tmp_path)
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = trl.RewardConfig(output_dir=str(tmp_path / "rm"), per_device_train_batch_size=2, max_steps=1,
                            report_to=[], save_strategy="no", use_cpu=True, logging_steps=1)
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["margin"].tolist() == pytest.approx([r["margin"] for r in read_jsonl(export)[:2]])
    assert math.isfinite(trainer.train().training_loss)


def test_a_tokenizer_outside_the_roots_or_unregistered_is_refused(campaign, tmp_path):
    from annotations.services import ServiceError

    with pytest.raises(ServiceError, match="unknown tokenizer"):
        build(campaign, format=formats.TRL_PREFERENCE, tokenizer=str(tmp_path))
    with pytest.raises(ServiceError, match="unknown tokenizer"):
        build(campaign, format=formats.TRL_PREFERENCE, tokenizer="gpt2")  # a hub id: never fetched
