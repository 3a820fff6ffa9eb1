"""Export row builders, split, near-duplicates, schemas and card: pure functions, no database."""
from __future__ import annotations

from collections import Counter

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from exports import card, formats
from exports.formats import Options, SourceJudgment, SourceTask


def _task(ranks, pairs=None, *, margin=None, texts=None, prompt="Which dose?", gold=None, k=None) -> SourceTask:
    k = k or len(ranks or gold)
    texts = texts or [f"answer {p}" for p in range(k)]
    if pairs is None and ranks is not None:
        pairs = []
    return SourceTask(id=1, external_id="ext-1", prompt=prompt, is_gold=gold is not None, gold=gold, ranks=ranks,
                      pairs=pairs, margin=margin, n_raters=3, models=[f"m{p}" for p in range(k)], texts=texts)


def _pairs3(m01, m02, m12, p01=0.9, p02=0.9, p12=0.9):
    return [{"i": 0, "j": 1, "p": p01, "margin": m01}, {"i": 0, "j": 2, "p": p02, "margin": m02},
            {"i": 1, "j": 2, "p": p12, "margin": m12}]


def test_k3_pairs_follow_the_consensus_ranking_and_each_pair_clears_its_own_margin():
    # Consensus: position 1 best, then 0, then 2; the (0, 2) pair is contested.
    task = _task([2, 1, 3], _pairs3(0.9, 0.5, 0.8), margin=0.5)
    dropped = Counter()
    pairs = formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE, min_margin=0.6), dropped)
    assert [(p.chosen, p.rejected, p.margin) for p in pairs] == [(1, 0, 0.9), (1, 2, 0.8)]
    assert dropped == {formats.DROP_MARGIN: 1}
    rows = [formats.pair_row(p, Options(format=formats.REWARD_PAIRS)) for p in pairs]
    assert rows[0]["chosen"] == "answer 1" and rows[0]["rejected"] == "answer 0" and rows[0]["margin"] == 0.9
    assert rows[0]["chosen_model"] == "m1" and rows[0]["rejected_model"] == "m0"


def test_k2_uses_the_task_margin_which_the_quality_job_compares():
    task = _task([2, 1], [{"i": 0, "j": 1, "p": 0.2, "margin": 0.6}], margin=0.5996)
    dropped = Counter()
    assert formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE, min_margin=0.6), dropped) == []
    assert dropped[formats.DROP_MARGIN] == 1


def test_ties_are_dropped_unless_asked_to_keep_them():
    task = _task([1, 1], [{"i": 0, "j": 1, "p": 0.5, "margin": 0.9}], margin=0.9)
    dropped = Counter()
    assert formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE), dropped) == []
    assert dropped == {formats.DROP_TIE: 1}
    kept = formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE, drop_ties=False), Counter())
    assert [(p.chosen, p.rejected) for p in kept] == [(0, 1)]


def test_near_duplicates_are_compared_after_normalising_case_whitespace_and_unicode():
    assert formats.same_text("Paris is  the capital.", "paris is the CAPITAL.")
    assert formats.same_text("ｆｕｌｌ width", "full width")  # NFKC
    assert not formats.same_text("x = a - b", "x = a + b")  # punctuation matters in maths and code
    assert not formats.same_text("The answer is 4.", "The answer is 5.")
    task = _task([1, 2], [{"i": 0, "j": 1, "p": 1.0, "margin": 1.0}], margin=1.0,
                 texts=["Take 5 mg.", "take 5\tmg."])
    dropped = Counter()
    assert formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE), dropped) == []
    assert dropped == {formats.DROP_DUPLICATE: 1}
    assert formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE, drop_near_duplicates=False), Counter())


def test_gold_tasks_are_exported_from_their_answer_key():
    task = _task(None, None, gold=[2, 1], k=2)
    opts = Options(format=formats.REWARD_PAIRS, min_margin=0.99, include_gold=True)
    pairs = formats.task_pairs(task, opts, Counter())
    row = formats.pair_row(pairs[0], opts)
    assert (row["chosen"], row["rejected"], row["margin"], row["consensus_margin"], row["is_gold"]) == (
        "answer 1", "answer 0", 1.0, None, True)


def test_too_few_raters_rule_out_every_pair_of_the_task_before_its_margins_do():
    task = _task([2, 1, 3], _pairs3(0.9, 0.5, 0.8), margin=0.5)
    task.n_raters = 1
    dropped = Counter()
    opts = Options(format=formats.TRL_PREFERENCE, min_margin=0.6, min_raters=2)
    assert formats.task_pairs(task, opts, dropped) == [] and dropped == {formats.DROP_RATERS: 3}
    ranking = Options(format=formats.RANKING, min_margin=0.6, min_raters=2)
    dropped.clear()
    assert formats.ranking_row(task, ranking, dropped) is None and dropped == {formats.DROP_RATERS: 1}
    assert len(formats.task_pairs(task, Options(format=formats.TRL_PREFERENCE, min_raters=1), Counter())) == 3
    gold = _task(None, None, gold=[2, 1], k=2)
    gold.n_raters = 0  # an answer key counts no raters and needs none
    opts = Options(format=formats.TRL_PREFERENCE, min_raters=2, include_gold=True)
    assert len(formats.task_pairs(gold, opts, Counter())) == 1


def test_conversational_rows_hold_message_lists_and_keep_only_role_and_content():
    prompt = [{"role": "system", "content": "Be careful.", "name": "sys"}, {"role": "user", "content": "Dose?"}]
    task = _task([1, 2], [{"i": 0, "j": 1, "p": 1.0, "margin": 1.0}], margin=1.0, prompt=prompt)
    opts = Options(format=formats.TRL_CONVERSATIONAL)
    row = formats.pair_row(formats.task_pairs(task, opts, Counter())[0], opts)
    assert row["prompt"] == [{"role": "system", "content": "Be careful."}, {"role": "user", "content": "Dose?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "answer 0"}]
    assert row["rejected"] == [{"role": "assistant", "content": "answer 1"}]
    standard = formats.pair_row(formats.task_pairs(task, opts, Counter())[0], Options(format=formats.TRL_PREFERENCE))
    assert standard["prompt"] == "System: Be careful.\n\nUser: Dose?\n\nAssistant:"


def test_ranking_orders_answers_and_scores_them_by_consensus_probability():
    task = _task([2, 1, 3], _pairs3(0.6, 0.8, 1.0, p01=0.2, p02=0.9, p12=1.0), margin=0.6)
    row = formats.ranking_row(task, Options(format=formats.RANKING, min_margin=0.5), Counter())
    assert [(a["answer"], a["model"], a["rank"]) for a in row["answers"]] == [
        ("answer 1", "m1", 1), ("answer 0", "m0", 2), ("answer 2", "m2", 3)]
    # Position 1 beats 0 with 0.8 and 2 with 1.0: mean 0.9.
    assert [a["score"] for a in row["answers"]] == [0.9, 0.55, 0.05]
    dropped = Counter()
    assert formats.ranking_row(task, Options(format=formats.RANKING, min_margin=0.7), dropped) is None
    tied = _task([1, 1, 2], _pairs3(0.9, 0.9, 0.9), margin=0.9)
    assert formats.ranking_row(tied, Options(format=formats.RANKING), dropped) is None
    assert dropped == {formats.DROP_MARGIN: 1, formats.DROP_TIE: 1}


def _judgment(ranks, ratings, rater="r-1"):
    return SourceJudgment(task_id=1, rater=rater, ranks=ranks, strength=None, ratings=ratings, rationale="why",
                          flags=[])


def test_attribute_rows_average_each_axis_per_response_and_skip_malformed_ratings():
    task = _task([1, 2], [{"i": 0, "j": 1, "p": 1.0, "margin": 1.0}], margin=1.0)
    judgments = [
        _judgment([1, 2], {"correctness": [5, 2], "rank": [4, 4]}),
        _judgment([1, 2], {"correctness": [4, 1], "rank": [2, 3]}, rater="r-2"),
        _judgment([1, 2], {"correctness": [3], "rank": "bad"}, rater="r-3"),  # wrong shapes: ignored
    ]
    opts = Options(format=formats.ATTRIBUTES, axes=("correctness", "rank"))
    rows = formats.attribute_rows(task, judgments, opts, Counter())
    # An axis named like a fixed column is written as attr_<axis>.
    assert formats.columns(opts)[:6] == ["prompt", "response", "model", "rank", "correctness", "attr_rank"]
    assert [(r["response"], r["rank"], r["correctness"], r["attr_rank"], r["n_raters"]) for r in rows] == [
        ("answer 0", 1, 4.5, 3.0, 2), ("answer 1", 2, 1.5, 3.5, 2)]


def test_judgment_rows_carry_the_handle_and_provenance_only():
    task = _task([1, 2], [{"i": 0, "j": 1, "p": 1.0, "margin": 1.0}], margin=1.0)
    opts = Options(format=formats.JUDGMENTS, axes=("correctness",), agreement=0.7)
    rows = formats.judgment_rows(task, [_judgment([1, 2], {"correctness": [5, 1]})], opts, Counter())
    assert list(rows[0]) == formats.columns(opts)
    assert rows[0]["rater"] == "r-1" and rows[0]["ratings"] == {"correctness": [5, 1]}
    assert (rows[0]["external_id"], rows[0]["n_raters"], rows[0]["consensus_margin"],
            rows[0]["campaign_agreement"]) == ("ext-1", 3, 1.0, 0.7)
    # An explicit minimum margin needs a consensus to clear.
    no_consensus = _task(None, None, k=2)
    no_consensus.ranks = None
    assert formats.judgment_rows(no_consensus, [_judgment([1, 2], {})], Options(
        format=formats.JUDGMENTS, min_margin=0.5), Counter()) == []


def test_split_is_by_prompt_and_deterministic():
    prompts = [f"question {n}" for n in range(4000)]
    test = [formats.is_test(p, 0.25) for p in prompts]
    assert test == [formats.is_test(p, 0.25) for p in prompts]
    assert 0.22 < sum(test) / len(test) < 0.28
    assert not any(formats.is_test(p, 0.0) for p in prompts)
    # A string prompt and the same text as a chat are different prompts; message key order does not matter.
    chat_a = [{"role": "user", "content": "question 1"}]
    chat_b = [{"content": "question 1", "role": "user"}]
    assert formats.prompt_key(chat_a) == formats.prompt_key(chat_b) != formats.prompt_key("question 1")


@pytest.mark.parametrize("fmt", formats.FORMATS)
@pytest.mark.parametrize("extras", [{}, {"include_gold": True}, {"tokens": True, "flag_over_length": True}])
def test_parquet_schema_has_the_columns_of_the_rows(fmt, extras):
    if extras.get("tokens") and fmt not in formats.PAIR_FORMATS:
        pytest.skip("token counts are for pair formats")
    opts = Options(format=fmt, axes=("correctness", "helpfulness"), **extras)
    schema = formats.parquet_schema(opts)
    assert schema.names == formats.columns(opts)


def test_card_front_matter_is_valid_yaml_with_hub_licence_and_splits():
    info = {
        "title": 'Dose "study": trl_preference', "export_id": 7, "campaign": "Dose", "lab": "Lab", "domain": "medicine",
        "format": formats.TRL_PREFERENCE, "file_format": "jsonl",
        "columns": formats.columns(Options(format=formats.TRL_PREFERENCE)), "rows_train": 1200, "rows_test": 0,
        "files": [{"split": "train", "path": "data/train.jsonl", "rows": 1200, "bytes": 10, "sha256": "ab" * 32}],
        "params": {"min_margin": 0.6}, "counts": {"tie": 2}, "agreement": {"report_version": 3, "alpha_nominal": {
            "value": 0.71, "low": 0.6, "high": 0.8}}, "consensus_version": 3, "raters_excluded": 1,
        "licence": "CC-BY-4.0", "allowed_uses": ["research"], "use": "research",
    }
    text = card.render_card(info)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] == 'Dose "study": trl_preference'
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train",
                                                                          "path": "data/train.jsonl"}]}]
    assert meta["size_categories"] == ["1K<n<10K"]
    assert "0.710 (95% CI 0.600 .. 0.800)" in text and "ab" * 32 in text and "research" in text
    custom = yaml.safe_load(card.render_card({**info, "licence": "Acme Data Licence"}).split("---\n")[1])
    assert (custom["license"], custom["license_name"]) == ("other", "acme-data-licence")


@given(st.text(alphabet="aAbB \t\u00a8\u0301eE\u00c9\u00e9\uff41\u212a1!-+", max_size=6),
       st.text(alphabet="aAbB \t\u00a8\u0301eE\u00c9\u00e9\uff41\u212a1!-+", max_size=6))
def test_the_first_character_shortcut_never_changes_the_answer(a, b):
    assert formats.same_text(a, b) == (formats.normalise_text(a) == formats.normalise_text(b))
