"""The dispute content type moves from app label ``annotations`` to ``moderation``.

Renaming the row (rather than letting a new one be created) keeps its id, so the permissions
(``resolve_escalated_dispute`` included), group grants and admin log entries that point at it follow
the model. Left alone when a ``moderation`` row exists already (and the other way round going back).
"""
from django.db import migrations

MODELS = ("dispute",)


def _relabel(apps, schema_editor, old_label: str, new_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    rows = ContentType.objects.using(schema_editor.connection.alias)
    taken = set(rows.filter(app_label=new_label, model__in=MODELS).values_list("model", flat=True))
    rows.filter(app_label=old_label, model__in=set(MODELS) - taken).update(app_label=new_label)
    ContentType.objects.clear_cache()  # get_by_natural_key() caches content types by (app_label, model)


def to_moderation(apps, schema_editor):
    _relabel(apps, schema_editor, "annotations", "moderation")


def to_annotations(apps, schema_editor):
    _relabel(apps, schema_editor, "moderation", "annotations")


class Migration(migrations.Migration):

    dependencies = [
        ("moderation", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(to_moderation, to_annotations),
    ]
