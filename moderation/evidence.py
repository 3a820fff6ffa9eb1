"""A dispute's frozen evidence laid out for a moderator: labelled rows and small tables, not a JSON dump.

Reads ``Dispute.evidence`` as ``moderation.services`` froze it (``_judgment_evidence``,
``_slash_evidence``). Keys this module does not know still appear, as rows under
"Other", so nothing frozen is hidden; the raw JSON stays one click away on the page.
Raters appear by their per-campaign handle only.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from annotations.handles import rater_handle
from annotations.models import Judgment
from moderation.models import Dispute

OTHER_JUDGMENTS_SHOWN = 50
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


@dataclass(frozen=True)
class Row:
    label: str
    value: object
    amount: bool = False  # integer base units, shown as tokens
    long: bool = False  # free text: shown in a scrolling box


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    long_column: int | None = None


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    table: Table | None = None
    note: str = ""


def text(value) -> str:
    """One value as a person reads it: yes/no, 3 significant digits, lists joined, nested data as compact JSON."""
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if isinstance(value, str) and _ISO_TIME.match(value):  # datetimes went through JSON as ISO text
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M %Z").strip()
        except ValueError:
            return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ", ".join(text(v) for v in value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _percent(fraction) -> str:
    try:  # a Decimal, frozen as text
        return f"{float(fraction) * 100:g} %"
    except (TypeError, ValueError):
        return text(fraction)


def _prompt_text(prompt) -> str:
    if isinstance(prompt, list):  # chat messages
        return "\n\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" if isinstance(m, dict) else text(m)
                           for m in prompt)
    return text(prompt)


def _at(ranks, position: int) -> str:
    return text(ranks[position]) if isinstance(ranks, list) and 0 <= position < len(ranks) else "—"


def _rows(data: dict, labels: dict[str, str], *, amounts=(), long=()) -> list[Row]:
    return [Row(label, data.get(key) if key in amounts else text(data.get(key)), amount=key in amounts,
                long=key in long)
            for key, label in labels.items() if key in data]


def _task_sections(evidence: dict) -> list[Section]:
    task, judgment = evidence.get("task") or {}, evidence.get("judgment") or {}
    consensus = evidence.get("consensus") or {}
    gold = evidence.get("gold") if evidence.get("gold") is not None else task.get("gold")
    sections = [Section("Task", _rows(task, {"external_id": "Task (lab's id)", "campaign": "Campaign",
                                             "state": "State", "is_gold": "Gold task"}))]
    sections[0].rows.append(Row("Prompt", _prompt_text(task.get("prompt")), long=True))
    responses = task.get("responses") or []
    sections.append(Section("Responses", table=Table(
        ["Position", "Model", "Response", "This rater's rank", "Consensus rank", "Gold rank"],
        [[text(r.get("position")), text(r.get("model")), text(r.get("text")),
          _at(judgment.get("ranks"), r.get("position", -1)), _at(consensus.get("ranks"), r.get("position", -1)),
          _at(gold, r.get("position", -1))] for r in responses],
        long_column=2,
    ), note="Ranks: 1 = best; ties share a rank."))
    if judgment:
        time_spent = judgment.get("time_spent_ms")
        rows = _rows(judgment, {"rater": "Rater (handle)", "ranks": "Ranks per position", "strength": "Strength",
                                "ratings": "Ratings", "rationale": "Rationale", "flags": "Flags",
                                "display_order": "Shown order (slots A, B ...)", "submitted_at": "Submitted",
                                "is_gold": "On a gold task", "gold_correct": "Gold answer right",
                                "voided": "Voided", "voided_reason": "Why voided"}, long=("rationale",))
        rows.insert(6, Row("Time spent", "—" if time_spent is None else f"{time_spent / 1000:.0f} s"))
        sections.append(Section(f"Judgment by {judgment.get('rater') or '?'}", rows))
    if consensus:
        sections.append(Section("Consensus", _rows(consensus, {
            "ranks": "Ranks per position", "margin": "Margin", "method": "Method", "n_raters": "Raters",
            "computed_at": "Computed"})))
    return sections


def _other_judgments(dispute: Dispute, evidence: dict) -> Section | None:
    task_id = (evidence.get("task") or {}).get("id")
    if not task_id or not dispute.campaign_id:
        return None
    others = (Judgment.objects.filter(task_id=task_id).exclude(pk=dispute.judgment_id)
              .order_by("submitted_at")[:OTHER_JUDGMENTS_SHOWN])
    return Section("Other judgments on this task, by handle", table=Table(
        ["Rater", "Ranks per position", "Strength", "Submitted", "Voided"],
        [[rater_handle(dispute.campaign_id, j.expert_id), text(j.ranks), text(j.strength),
          j.submitted_at.strftime("%Y-%m-%d %H:%M"), text(j.voided)] for j in others],
    ), note="As they are now, not frozen with the dispute.")


def _signals_section(signals: dict) -> Section:
    section = Section(f"Quality signals of {signals.get('handle') or 'the rater'}", _rows(signals, {
        "flagged": "Flagged", "flags": "Flags", "n_judgments": "Judgments", "agreement": "Agreement",
        "reliability": "Reliability", "gold_n": "Gold answers", "gold_accuracy": "Gold accuracy",
        "gold_lower_bound": "Gold accuracy, lower bound", "median_seconds": "Median seconds a judgment",
        "computed_at": "Computed"}))
    per_signal = signals.get("evidence")
    if isinstance(per_signal, dict) and per_signal:
        known = ("statistic", "value", "threshold", "flagged")
        section.table = Table(["Signal", "Statistic", "Value", "Threshold", "Flagged", "Other figures"], [
            [name.replace("_", " "), *(text(figures.get(key)) for key in known),
             ", ".join(f"{k} {text(v)}" for k, v in figures.items() if k not in known) or "—"]
            if isinstance(figures, dict) else [name.replace("_", " "), "—", text(figures), "—", "—", "—"]
            for name, figures in per_signal.items()
        ])
    return section


def _slash_sections(evidence: dict) -> list[Section]:
    slash = dict(evidence.get("slash") or {})
    if "fraction" in slash:
        slash["fraction"] = _percent(slash["fraction"])
    rows = _rows(slash, {"reason": "Reason", "fraction": "Fraction of the stake", "bonded_amount": "From the bond",
                         "unbonding_amount": "From unbonding", "created_at": "Slashed", "campaign": "Campaign",
                         "epoch": "Epoch", "transaction": "Ledger transaction", "key": "Key"},
                 amounts=("bonded_amount", "unbonding_amount"))
    sections = [Section("Slash", rows)]
    reward = evidence.get("epoch_reward")
    if isinstance(reward, dict):
        sections.append(Section("The expert's reward that epoch", _rows(reward, {
            "amount": "Amount", "judgments": "Judgments", "gold_n": "Gold answers", "gold_correct": "Gold right",
            "agreement": "Agreement", "quality": "Quality"}, amounts=("amount",))))
    failed = evidence.get("failed_gold")
    if isinstance(failed, list):
        sections.append(Section("Gold answers scored wrong that epoch", table=Table(
            ["Judgment", "Task", "Ranks given", "Gold ranks"],
            [[text(f.get("judgment")), text(f.get("task")), text(f.get("ranks")), text(f.get("gold"))]
             for f in failed],
        )))
    return sections


KNOWN_KEYS = {"task", "judgment", "gold", "consensus", "signals", "epoch", "slash", "epoch_reward", "failed_gold"}


def evidence_sections(dispute: Dispute) -> list[Section]:
    evidence = dispute.evidence if isinstance(dispute.evidence, dict) else {}
    sections: list[Section] = []
    if "slash" in evidence:
        sections += _slash_sections(evidence)
    if "task" in evidence:
        sections += _task_sections(evidence)
        other = _other_judgments(dispute, evidence)
        if other is not None:
            sections.append(other)
    if isinstance(evidence.get("signals"), dict):
        sections.append(_signals_section(evidence["signals"]))
    if isinstance(evidence.get("epoch"), dict):
        sections.append(Section("Epoch of the judgment", _rows(evidence["epoch"], {
            "index": "Index", "state": "State", "id": "Id"})))
    rest = {key: value for key, value in evidence.items() if key not in KNOWN_KEYS}
    if rest:
        sections.append(Section("Other", [Row(key.replace("_", " ").capitalize(), text(value)) for key, value in rest.items()]))
    return sections
