"""The dataset card beside every export: Markdown with YAML front matter (no Django).

The front matter is the Hugging Face dataset-card metadata (``license``,
``pretty_name``, ``tags``, ``size_categories`` and ``configs`` with the
train/test ``data_files``), so ``datasets.load_dataset(<unzipped bundle>)``
finds the splits from the card alone. Scalars are written as JSON strings,
which YAML reads as they are, so no value can break the front matter.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from exports import formats

# Licence ids the Hub's dataset cards accept (a subset: the ones a data
# campaign is likely to use); anything else is written as ``other`` with its
# name.
HUB_LICENCES = frozenset({
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
    "cc-by-nd-4.0", "cc-by-nc-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0", "odc-by", "odbl", "pddl", "cdla-permissive-2.0",
    "cdla-sharing-1.0", "openrail", "bsd-3-clause", "gpl-3.0", "unknown",
})

COLUMN_DOCS = {
    "prompt": "The task's prompt (a string; in trl_conversational a list of {role, content} messages).",
    "chosen": "The response the consensus ranked higher.",
    "rejected": "The response the consensus ranked lower.",
    "margin": "The pair's consensus margin |2p - 1| (0 = even split, 1 = every weighted vote agrees); "
              "1.0 for a gold answer key.",
    "chosen_model": "Model that wrote the chosen response (as uploaded by the lab).",
    "rejected_model": "Model that wrote the rejected response.",
    "answers": "Every response, best first: answer, model, consensus rank (1 = best) and score (mean consensus "
               "probability of beating each other answer).",
    "response": "One response of the task.",
    "model": "Model that wrote the response.",
    "rank": "Consensus rank of the response (1 = best), or null without a consensus.",
    "responses": "The task's responses in upload order: model and text.",
    "rater": "Pseudonymous per-campaign rater handle (never a name or e-mail).",
    "ranks": "The rater's rank per response, in upload order (1 = best; ties share a rank).",
    "strength": "K = 2 with the strength scale: -3 (first response much better) .. 0 (tie) .. +3 (second much "
                "better), in upload order; null otherwise.",
    "ratings": "Likert 1..5 rating per attribute, one value per response in upload order.",
    "rationale": "The rater's explanation.",
    "flags": "What the rater flagged (unsafe, personal_data, outside_expertise).",
    "external_id": "The lab's id of the task.",
    "n_raters": "Judgments behind the row (consensus formats: counted in the consensus; attributes: judgments "
                "rating this response).",
    "consensus_margin": "Consensus margin of the pair (pair formats) or of the task (smallest pair margin); "
                        "null for gold answer keys and tasks without a consensus.",
    "campaign_agreement": "Krippendorff's alpha (nominal, pair direction) of the campaign in the quality report "
                          "used, or null before the first report.",
    "is_gold": "Whether the task is a gold (honeypot) task exported from its answer key.",
    "prompt_tokens": "Prompt tokens as TRL's DPO trainer tokenizes it with the named tokenizer.",
    "chosen_tokens": "Tokens of the chosen completion after the prompt (EOS included for standard rows).",
    "rejected_tokens": "Tokens of the rejected completion after the prompt.",
    "over_length": "True when prompt + the longer completion exceeds max_tokens (the trainer would truncate it).",
}

FORMAT_DOCS = {
    formats.TRL_PREFERENCE: "TRL standard preference format (prompt, chosen, rejected strings): "
                            "`trl.DPOTrainer` and `trl.RewardTrainer` read it as is.",
    formats.TRL_CONVERSATIONAL: "TRL conversational preference format (prompt, chosen, rejected as lists of "
                                "{role, content} messages): TRL applies the model's chat template itself.",
    formats.REWARD_PAIRS: "Reward-model pairs (prompt, chosen, rejected) with the consensus `margin` that "
                          "`trl.RewardTrainer` adds to its loss.",
    formats.RANKING: "K-way rankings, one row per task, every answer with its consensus rank and score "
                     "(like Nectar).",
    formats.ATTRIBUTES: "Per-response attribute scores, one row per response, one column per attribute holding "
                        "the mean Likert rating (like HelpSteer2).",
    formats.JUDGMENTS: "Every individual non-voided judgment, raters named by pseudonymous per-campaign handles.",
}


def hub_licence(licence: str) -> tuple[str, str | None]:
    """``(license, license_name)`` for the front matter: a Hub id, or ``other`` and the campaign's name."""
    slug = (licence or "").strip().lower()
    if slug in HUB_LICENCES:
        return slug, None
    return "other", slug.replace(" ", "-") or "unspecified"


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def _q(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def front_matter(info: Mapping[str, Any]) -> str:
    licence, licence_name = hub_licence(info["licence"])
    lines = ["---", f"license: {_q(licence)}"]
    if licence_name:
        lines.append(f"license_name: {_q(licence_name)}")
    lines += [
        f"pretty_name: {_q(info['title'])}",
        "tags:",
        *(f"- {_q(tag)}" for tag in ("datadao", "human-feedback", "preference", info["format"].replace("_", "-"))),
        "size_categories:",
        f"- {_q(size_category(info['rows_train'] + info['rows_test']))}",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for split in info["files"]:
        lines += [f"  - split: {_q(split['split'])}", f"    path: {_q(split['path'])}"]
    lines.append("---")
    return "\n".join(lines) + "\n"


def _figure(interval: Mapping[str, Any] | None) -> str:
    if not interval or interval.get("value") is None:
        return "not computed"
    value = f"{interval['value']:.3f}"
    if interval.get("low") is not None and interval.get("high") is not None:
        value += f" (95% CI {interval['low']:.3f} .. {interval['high']:.3f})"
    return value


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def render_card(info: Mapping[str, Any]) -> str:
    """The card for one export. ``info`` keys: ``title``, ``export_id``, ``campaign``, ``lab``, ``domain``,
    ``format``, ``file_format``, ``columns``, ``rows_train``, ``rows_test``, ``files`` (``split``, ``path``,
    ``rows``, ``bytes``, ``sha256``), ``params``, ``counts``, ``agreement`` (``report_version``,
    ``alpha_nominal``, ``alpha_ordinal``, ``raw_agreement``, ``n_raters``), ``consensus_version``,
    ``raters_excluded``, ``raters_in_file``, ``licence``, ``allowed_uses``, ``use``, ``tokenizer``,
    ``pyarrow_version``."""
    loader = "json" if info["file_format"] == "jsonl" else "parquet"
    data_files = ", ".join(f'"{f["split"]}": "{f["path"]}"' for f in info["files"])
    agreement = info.get("agreement") or {}
    counts = info.get("counts") or {}
    params = info.get("params") or {}
    lines = [
        f"# {info['title']}",
        "",
        f"Expert preference data exported from DataDAO Feedback: campaign \"{info['campaign']}\" of "
        f"{info['lab']} (domain: {info['domain']}), export #{info['export_id']}.",
        "",
        FORMAT_DOCS[info["format"]],
        "",
        f"**Rows:** {info['rows_train']} train, {info['rows_test']} test.",
        "",
        "## Files",
        "",
        *_table([(f["split"], f"`{f['path']}`", f["rows"], f["bytes"], f"`{f['sha256']}`") for f in info["files"]],
                ["split", "file", "rows", "bytes", "sha256"]),
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{loader}", data_files={{{data_files}}})',
        "# or, from the unzipped bundle (this card names the splits):",
        'ds = load_dataset("path/to/unzipped/bundle")',
        "```",
        "",
        "## Columns",
        "",
        *_table([(f"`{c}`", COLUMN_DOCS.get(c, "Mean Likert rating (1..5) on this attribute over the kept "
                                              "judgments."))
                 for c in info["columns"]], ["column", "meaning"]),
        "",
        "## Filters",
        "",
        *_table([(f"`{k}`", _q(v)) for k, v in sorted(params.items())], ["parameter", "value"]),
        "",
        "What the filters left out or flagged (pairs for pair formats, tasks for ranking, tasks or judgments "
        "for the judgment formats):",
        "",
        *_table([(k, v) for k, v in sorted(counts.items())] or [("nothing", 0)], ["reason", "count"]),
        "",
        "## Agreement and raters",
        "",
        f"- Quality report: version {agreement.get('report_version', 'none')}; consensus version "
        f"{info.get('consensus_version')}.",
        f"- Krippendorff's alpha, pair direction (nominal): {_figure(agreement.get('alpha_nominal'))}.",
        f"- Krippendorff's alpha, strength (ordinal): {_figure(agreement.get('alpha_ordinal'))}.",
        f"- Raw pairwise agreement: {agreement.get('raw_agreement', 'not computed')}.",
        f"- Raters in the campaign: {agreement.get('n_raters', 0)}; excluded by the rater filters: "
        f"{info.get('raters_excluded', 0)}"
        + (f"; raters in this file: {info['raters_in_file']}" if info.get("raters_in_file") is not None else "")
        + ".",
        "- Raters appear only as pseudonymous per-campaign handles; no name, e-mail or account id is exported.",
        "",
        "## Licence and uses",
        "",
        f"- Licence: {info['licence']}.",
        "- Allowed uses: " + (", ".join(info["allowed_uses"]) if info["allowed_uses"]
                              else "not restricted by the campaign") + ".",
        f"- Intended use of this export: {info.get('use') or 'not stated'}.",
        "",
        "## Reproducibility",
        "",
        "Rows are ordered by task, then pair (upload positions) or judgment; the train/test split is by a hash of "
        "the prompt, so a prompt is never in both splits; the data files hold no timestamps. Parquet is written "
        f"with pyarrow {info.get('pyarrow_version') or '(not used)'}, zstd, fixed row groups.",
    ]
    if info.get("tokenizer"):
        tok = info["tokenizer"]
        lines.append(f"Token counts come from the tokenizer `{tok['name']}` (files sha256 `{tok['sha256']}`), "
                     "counted as TRL's DPO trainer tokenizes rows.")
    return front_matter(info) + "\n" + "\n".join(lines) + "\n"
