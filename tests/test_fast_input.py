"""The fast lane's input reader agrees with the serializer it is derived from.

Whatever JSON body comes in, the reader either steps aside (None: DRF decides) or gives exactly the
serializer's ``validated_data``; for the plain bodies an expert's client sends, it does not step aside.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from annotations.api_experts import AssignmentNextApi, JudgmentSubmitApi
from datadao.fast_input import ImproperlyBuilt, plain_reader
from datadao.inputs import Id, Integer, Text


class Everything(serializers.Serializer):
    """One field of each kind the reader knows, with bounds, defaults and nulls."""

    name = Text(max_length=5, min_length=2)
    note = Text(required=False, allow_blank=True, default="", trim_whitespace=True)
    count = Integer(min_value=1, max_value=9, allow_null=True, required=False)
    ident = Id(required=False)
    colour = serializers.ChoiceField(choices=[("red", "Red"), ("blue", "Blue")], required=False)
    tags = serializers.ListField(child=serializers.ChoiceField(choices=["a", "b"]), min_length=1, required=False)
    scores = serializers.DictField(child=serializers.DictField(child=Integer()), required=False)
    blob = serializers.JSONField(required=False)
    plain = serializers.CharField(required=False)


SERIALIZERS = [Everything, JudgmentSubmitApi.JudgmentSubmitInput, AssignmentNextApi.NextInput]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=8), st.sampled_from(["", " a ", "red", "blue", "A", "B", "a", "b", "ok", "\x00x", "unsure",
                                          "unsafe", "\ud800"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["A", "B", "c", "x"]), inner, max_size=3)),
    max_leaves=8)


# A valid body per serializer; the bodies tried keep, change or drop each of its fields.
VALID = {
    Everything: {"name": "abc", "note": " hi ", "count": 3, "ident": 7, "colour": "red", "tags": ["a", "b"],
                 "scores": {"x": {"A": 1}}, "blob": {"any": [1, "thing"]}, "plain": "text"},
    JudgmentSubmitApi.JudgmentSubmitInput: {"ranking": ["B", "A"], "strength": 2,
                                            "ratings": {"correctness": {"A": 4, "B": 2}},
                                            "rationale": " Cites the guideline. ", "flags": ["unsafe"]},
    AssignmentNextApi.NextInput: {"campaign": 5},
}


@st.composite
def bodies(draw, serializer_class):
    body = {}
    for key, value in VALID[serializer_class].items():
        choice = draw(st.sampled_from(["keep", "keep", "change", "drop"]))
        if choice != "drop":
            body[key] = value if choice == "keep" else draw(json_values)
    if draw(st.booleans()):
        body["unknown"] = draw(json_values)
    return body


def drf(serializer_class, body):
    serializer = serializer_class(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_reader_gives_the_serializers_data_or_steps_aside(serializer_class, data):
    body = data.draw(st.one_of(bodies(serializer_class), json_values))
    read = plain_reader(serializer_class)(body)
    if read is not None:
        assert read == drf(serializer_class, body), body


@pytest.mark.parametrize("body", [
    {"ranking": ["B", "A"]},
    {"ranking": ["A", ["B", "C"]], "strength": None, "rationale": "  Both cite the guideline.  "},
    {"ranking": ["B", "A"], "strength": -2, "ratings": {"correctness": {"A": 4, "B": 2}}, "flags": []},
    *VALID.values(),
])
def test_a_plain_judgment_takes_the_fast_lane(body):
    """(The bodies the property test starts from are plain too; each must be read, not left to DRF.)"""
    serializer_class = next(s for s, valid in VALID.items() if valid is body) if body in VALID.values() \
        else JudgmentSubmitApi.JudgmentSubmitInput
    read = plain_reader(serializer_class)(body)
    assert read is not None and read == drf(serializer_class, body)


def test_next_takes_an_id_and_leaves_anything_else_to_drf():
    read = plain_reader(AssignmentNextApi.NextInput)
    assert read({"campaign": 12}) == {"campaign": 12}
    assert [read(body) for body in ({"campaign": 0}, {"campaign": "12"}, {"campaign": True}, {"campaign": 2**63},
                                    {}, [], {"campaign": None})] == [None] * 7


@pytest.mark.parametrize("field", [
    serializers.BooleanField(), serializers.EmailField(), serializers.FloatField(),
    serializers.MultipleChoiceField(choices=["a"]), Text(validators=[lambda value: None]),
    serializers.CharField(default=lambda: "x"),
])
def test_a_field_it_cannot_check_as_drf_does_is_refused_when_built(field):
    serializer_class = type("WithField", (serializers.Serializer,), {"field": field})
    with pytest.raises(ImproperlyBuilt):
        plain_reader(serializer_class)


def test_object_level_validation_is_refused_when_built():
    class Checked(serializers.Serializer):
        name = Text()

        def validate(self, attrs):
            return attrs

    with pytest.raises(ImproperlyBuilt):
        plain_reader(Checked)
