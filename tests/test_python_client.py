"""The Python client (clients/python) against the real app on a live server: a lab's whole pipeline.

Create a campaign, import tasks from every source the client takes, see a bad row's line and field, fund
(a lost answer retried funds once), open, experts rate (seeded), quality and consensus as DataFrames,
request an export, wait for it and load it with ``datasets``: the rows equal the export's files.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests

# datasets must never reach a hub from a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))

from datadao_client import Client, DataDAOError  # noqa: E402

from annotations.models import Task  # noqa: E402
from rewards import selectors as reward_selectors  # noqa: E402
from tests import factories  # noqa: E402

pandas = pytest.importorskip("pandas")
datasets = pytest.importorskip("datasets")

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = 1_000_000


def _row(n: int) -> dict:
    return {"external_id": f"q-{n}", "prompt": f"Question {n}: which dose of drug {n} is right for an adult?",
            "responses": [{"model": "model-a", "text": f"Right answer {n}: 5 mg daily."},
                          {"model": "model-b", "text": f"Wrong answer {n}: 50 mg hourly."}]}


class AnswerLostOnce(requests.Session):
    """The server gets the first funding request and acts on it, but its answer is lost on the way back (a proxy
    answers 503): the client's retry must not fund twice."""

    lost = False

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if request.url.endswith("/fund") and not self.lost:
            self.lost = True
            lost = requests.Response()
            lost.status_code, lost.request, lost._content = 503, request, b'{"errors": [{"message": "lost"}]}'
            lost.headers["Retry-After"] = "0"
            return lost
        return response


@pytest.fixture
def lab_setup(live_server, settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")
    lab = factories.LabFactory()
    user = factories.lab_member(lab)
    factories.lab_deposit(lab, 1_000 * TOKEN)
    return lab, Client(live_server.url, token=factories.api_token(user), session=AnswerLostOnce())


def test_a_lab_runs_its_pipeline_with_the_python_client(lab_setup, tmp_path):
    lab, dd = lab_setup

    campaign = dd.campaigns.create(name="Dosing safety", domain="medicine", overlap=3, reward_per_judgment=0,
                                   guidelines="Prefer the safe dose.")
    assert campaign.status == "draft" and campaign["overlap"] == 3
    assert [c.id for c in dd.campaigns.list()] == [campaign.id]

    # Tasks from a list, a JSONL file, a DataFrame and a Dataset; a re-run skips what is there.
    assert campaign.import_tasks([_row(1), _row(2)]).created == 2
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(_row(n)) + "\n" for n in (3, 4)))
    assert campaign.import_tasks(path).created == 2
    assert campaign.import_tasks(pandas.DataFrame([_row(5), _row(6)])).created == 2
    assert campaign.import_tasks(datasets.Dataset.from_list([_row(7), _row(8)])).created == 2
    again = campaign.import_tasks(str(path))
    assert (again.created, again.skipped) == (0, 2)

    bad = [_row(9), _row(10)]
    bad[1]["responses"][1]["text"] = ""
    with pytest.raises(DataDAOError) as caught:
        campaign.import_tasks(bad)
    assert caught.value.status == 400
    assert caught.value.errors[0]["line"] == 2 and caught.value.errors[0]["field"] == "responses[1].text"
    assert str(caught.value).startswith("HTTP 400: line 2, responses[1].text: ")
    assert campaign.refresh()["task_count"] == 8  # all or nothing

    # Funding: the first answer is lost and the client retries with the key it made: funded once.
    funded = campaign.fund(100 * TOKEN)
    assert dd.session.lost and funded.escrow_balance == 100 * TOKEN
    assert reward_selectors.lab_balance(lab=lab) == 900 * TOKEN
    replay = campaign.fund(100 * TOKEN, idempotency_key=funded.idempotency_key)
    assert replay.transaction == funded.transaction and replay.escrow_balance == 100 * TOKEN
    assert reward_selectors.lab_balance(lab=lab) == 900 * TOKEN
    assert campaign.fund(50 * TOKEN).escrow_balance == 150 * TOKEN  # a new call: a new key

    assert campaign.open().status == "open"
    with pytest.raises(DataDAOError) as caught:
        campaign.open()
    assert caught.value.status == 409

    # Three experts rate every task (seeded); the quality job finds the consensus.
    experts = [factories.ExpertFactory() for _ in range(3)]
    for task in Task.objects.filter(campaign_id=campaign.id):
        for expert in experts:
            factories.rated_judgment(task=task, expert=expert, ranks=[1, 2])
    campaign.recompute_quality()

    quality = campaign.quality()
    assert len(quality) == 3 and quality["n_judgments"].tolist() == [8, 8, 8]
    assert quality.attrs["report"]["n_tasks"] == 8
    consensus = campaign.consensus()
    assert sorted(consensus["external_id"]) == sorted(f"q-{n}" for n in range(1, 9))
    assert (consensus["ranks"].map(list) == pandas.Series([[1, 2]] * 8)).all()

    export = campaign.export("trl_preference", test_fraction=0.25).wait(timeout=60, progress=False)
    assert export.state == "done" and export.data["rows"]["train"] + export.data["rows"]["test"] == 8
    files = export.download(tmp_path / "download")
    assert set(files) == {"train", "test", "card"}
    loaded = export.to_datasets(tmp_path / "as-datasets")
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        rows = [json.loads(line) for line in files[split].read_text().splitlines()]
        assert loaded[split].to_list() == rows
        assert len(rows) == export.data["rows"][split]
    assert {row["chosen"] for split in loaded.values() for row in split} == {
        f"Right answer {n}: 5 mg daily." for n in range(1, 9)}

    assert campaign.close().status == "closed"


def test_another_labs_campaign_is_not_found(lab_setup, live_server):
    _, dd = lab_setup
    other = factories.CampaignFactory()
    with pytest.raises(DataDAOError) as caught:
        dd.campaigns.get(other.pk)
    assert caught.value.status == 404 and caught.value.request_id
