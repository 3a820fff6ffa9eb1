"""The lab console's forms. They only render and gather input: the API's serializers validate it
(``labs.views``), so a page shows the very messages the API answers with."""
from __future__ import annotations

from django import forms

from annotations.models import Campaign, Domain
from exports.models import Export


def _lenient_number(label: str, *, step: str = "1", help_text: str = "") -> forms.CharField:
    return forms.CharField(required=False, label=label, help_text=help_text,
                           widget=forms.NumberInput(attrs={"step": step}))


def _flag(label: str, help_text: str = "") -> forms.BooleanField:
    return forms.BooleanField(required=False, label=label, help_text=help_text)


def _words(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(required=False, label=label, help_text=help_text,
                           widget=forms.TextInput(attrs={"size": 50, "spellcheck": "false"}))


def _campaign_help(name: str) -> str:
    return str(Campaign._meta.get_field(name).help_text)


class ApiForm(forms.Form):
    """A form whose fields are rendered in fieldsets and whose raw input goes to an API serializer.

    ``FIELDSETS``: (legend, field names, open) in order; a closed one opens when a field in it has an
    error. ``LIST_FIELDS``: comma-separated text that the API takes as a list of strings.
    """

    FIELDSETS: tuple[tuple[str, tuple[str, ...], bool], ...] = ()
    LIST_FIELDS: tuple[str, ...] = ()

    def fieldsets(self) -> list[dict]:
        out = []
        for legend, names, is_open in self.FIELDSETS:
            bound = [self[name] for name in names if name in self.fields]
            if bound:
                out.append({"legend": legend, "fields": bound,
                            "open": is_open or any(field.errors for field in bound)})
        return out

    def api_data(self):
        """The submitted fields as the API's serializer reads a form body: a blank field counts as left
        out (so the API's default applies), a list field as its comma-separated items, and an unticked
        box as false (DRF would take a box left out of a form for its default)."""
        data = self.data.copy()
        for name, field in self.fields.items():
            if isinstance(field, forms.BooleanField) and name not in data and not field.disabled:
                data[name] = "false"
        for name in list(data):
            values = [value for value in data.getlist(name) if value.strip()]
            if not values:
                del data[name]
            elif name in self.LIST_FIELDS:
                data.setlist(name, [item.strip() for item in ",".join(values).split(",") if item.strip()])
        return data


class CampaignForm(ApiForm):
    """The fields of ``POST /api/v1/campaigns/``; a lab choice only for a member of several labs."""

    FIELDSETS = (
        ("Campaign", ("lab", "name", "domain", "guidelines"), True),
        ("Judgment form", ("responses_per_task", "strength_scale", "attribute_axes", "rationale_required",
                           "rationale_min_length"), True),
        ("Raters and pay", ("overlap", "max_overlap", "reward_per_judgment", "min_stake"), True),
        ("Data rights", ("licence", "allowed_uses"), False),
        ("Quality and rewards", ("gold_rate", "lease_minutes", "consensus_min_margin", "gold_bar", "q_min",
                                 "pay_confidence", "gold_weight", "stake_beta", "slash_fraction"), False),
        ("Data sales and data value", ("data_for_sale", "data_price", "data_value_weighting", "data_value_cap"),
         False),
    )
    LIST_FIELDS = ("attribute_axes", "allowed_uses")

    name = forms.CharField(required=False, label="Name", widget=forms.TextInput(attrs={"size": 50}))
    domain = forms.CharField(
        required=False, label="Domain", help_text=_campaign_help("domain"),
        widget=forms.Select(choices=[("", "Choose a domain")] + list(Domain.choices)))
    guidelines = forms.CharField(required=False, label="Guidelines", help_text=_campaign_help("guidelines"),
                                 widget=forms.Textarea(attrs={"rows": 6, "cols": 60}))
    responses_per_task = _lenient_number("Responses per task", help_text=_campaign_help("responses_per_task"))
    strength_scale = _flag("Preference strength scale", _campaign_help("strength_scale"))
    attribute_axes = _words("Attributes", "Comma-separated names (lower case, digits, underscores) of 1–5 "
                                          "ratings per response, e.g. correctness, helpfulness. Up to 10.")
    rationale_required = _flag("Rationale required", _campaign_help("rationale_required"))
    rationale_min_length = _lenient_number("Rationale minimum length", help_text=_campaign_help("rationale_min_length"))
    overlap = _lenient_number("Overlap", help_text=_campaign_help("overlap"))
    max_overlap = _lenient_number("Maximum overlap", help_text=_campaign_help("max_overlap") + " Empty: the larger "
                                  "of overlap and 5.")
    reward_per_judgment = _lenient_number("Reward per judgment (base units)",
                                          help_text=_campaign_help("reward_per_judgment"))
    min_stake = _lenient_number("Minimum stake (base units)", help_text=_campaign_help("min_stake"))
    licence = forms.CharField(required=False, label="Licence", help_text=_campaign_help("licence"))
    allowed_uses = _words("Allowed uses", "Comma-separated, e.g. research, commercial-training "
                                          "(empty: research and commercial-training).")
    gold_rate = _lenient_number("Gold rate", step="any", help_text=_campaign_help("gold_rate"))
    lease_minutes = _lenient_number("Lease minutes", help_text=_campaign_help("lease_minutes"))
    consensus_min_margin = _lenient_number("Consensus minimum margin", step="any",
                                           help_text=_campaign_help("consensus_min_margin"))
    gold_bar = _lenient_number("Gold bar", step="any", help_text=_campaign_help("gold_bar"))
    q_min = _lenient_number("Quality floor (q_min)", step="any", help_text=_campaign_help("q_min"))
    pay_confidence = _lenient_number("Pay confidence", step="any", help_text=_campaign_help("pay_confidence"))
    gold_weight = _lenient_number("Gold weight", step="any", help_text=_campaign_help("gold_weight"))
    stake_beta = _lenient_number("Stake beta", step="any", help_text=_campaign_help("stake_beta"))
    slash_fraction = _lenient_number("Slash fraction", step="any", help_text=_campaign_help("slash_fraction"))
    data_for_sale = _flag("Data for sale", _campaign_help("data_for_sale"))
    data_price = _lenient_number("Data price (base units)", help_text=_campaign_help("data_price"))
    data_value_weighting = _flag("Data-value weighting", _campaign_help("data_value_weighting"))
    data_value_cap = _lenient_number("Data-value cap", step="any", help_text=_campaign_help("data_value_cap"))

    def __init__(self, *args, labs=(), **kwargs):
        super().__init__(*args, **kwargs)
        if len(labs) > 1:
            self.fields["lab"] = forms.CharField(
                required=False, label="Lab", help_text="You belong to several labs: the campaign is this one's.",
                widget=forms.Select(choices=[("", "Choose a lab")] + [(lab.slug, lab.name) for lab in labs]))
            self.order_fields(["lab"])


class CampaignEditForm(CampaignForm):
    """The fields of ``PATCH /api/v1/campaigns/{id}/``, prefilled with the campaign's values. ``locks``: why a
    field cannot change in the campaign's status (shown disabled, with the reason); ``limits``: the bound on an
    editable field's new value. Both come from the service that enforces them."""

    def __init__(self, *args, campaign: Campaign, locks: dict[str, str | None], limits: dict[str, str | None],
                 **kwargs):
        initial = {}
        for name in self.base_fields:
            value = getattr(campaign, name)
            initial[name] = ", ".join(value) if isinstance(value, list) else value
        super().__init__(*args, initial=initial, **kwargs)
        for name, field in self.fields.items():
            if locks.get(name):
                field.disabled = True
                field.help_text = f"Read-only: {locks[name]}"
            elif limits.get(name):
                field.help_text = f"{field.help_text} Now it {limits[name]}"

    def api_data(self):
        """As the create form's, except that a field the lab emptied is sent empty rather than left out (an edit
        may clear guidelines, attribute axes or allowed uses). A form body cannot carry an empty list, so then
        the data goes to the serializer as plain JSON-like data, lists as lists."""
        data = super().api_data()
        cleared = [name for name in ("guidelines", *self.LIST_FIELDS)
                   if name in self.data and name not in data and name in self.fields and not self.fields[name].disabled]
        if not cleared:
            return data
        plain = {name: data.getlist(name) if name in self.LIST_FIELDS else data[name] for name in data}
        for name in cleared:
            plain[name] = [] if name in self.LIST_FIELDS else ""
        return plain


class TaskUploadForm(forms.Form):
    file = forms.FileField(
        required=False, label="Task file (JSONL or JSON)",
        help_text="One task row per line (JSONL), or a JSON array of rows. All rows are checked first: one bad "
                  "row imports nothing. Rows whose external_id the campaign has already are skipped.",
        widget=forms.FileInput(attrs={"accept": ".jsonl,.ndjson,.json,application/json,application/x-ndjson"}),
    )


class ExportRequestForm(ApiForm):
    """The fields of ``POST /api/v1/campaigns/{id}/exports``."""

    FIELDSETS = (
        ("Export", ("format", "file_format", "use", "test_fraction"), True),
        ("Filters", ("min_margin", "min_raters", "min_rater_quality", "exclude_flagged_raters", "include_gold",
                     "drop_ties", "drop_near_duplicates", "near_duplicates"), False),
        ("Token lengths (pair formats)", ("tokenizer", "max_tokens", "over_length"), False),
    )

    format = forms.CharField(required=False, label="Format", widget=forms.Select(choices=Export.Format.choices))
    file_format = forms.CharField(required=False, label="File type",
                                  widget=forms.Select(choices=Export.FileFormat.choices))
    use = forms.CharField(required=False, label="Intended use",
                          help_text="Checked against the campaign's allowed uses, e.g. research.")
    test_fraction = _lenient_number("Test fraction", step="any",
                                    help_text="Share of prompts in the test split (0 to 0.5; 0: no test file).")
    min_margin = _lenient_number("Minimum margin", step="any",
                                 help_text="Empty: the campaign's consensus minimum margin (consensus formats).")
    min_raters = _lenient_number("Minimum raters", help_text="Fewest judgments a task's consensus must count. "
                                 "Empty: 2 for the consensus formats.")
    min_rater_quality = _lenient_number("Minimum rater quality", step="any",
                                        help_text="Leave out raters whose reliability is below this (0 to 1).")
    exclude_flagged_raters = _flag("Leave out flagged raters")
    include_gold = _flag("Include gold tasks")
    drop_ties = _flag("Drop ties")
    drop_near_duplicates = _flag("Drop pairs of near-identical responses")
    near_duplicates = forms.CharField(
        required=False, label="Near-duplicate test",
        widget=forms.Select(choices=[("text", "Same text after normalising"), ("embedding", "Embeddings (slower)")]))
    tokenizer = forms.CharField(required=False, label="Tokenizer",
                                help_text="A tokenizer registered on this server, to count tokens.")
    max_tokens = _lenient_number("Maximum tokens")
    over_length = forms.CharField(
        required=False, label="Rows over the maximum",
        widget=forms.Select(choices=[("drop", "Drop them"), ("flag", "Keep them, flagged")]))
