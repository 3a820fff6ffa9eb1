"""The export content type moves from app label ``annotations`` to ``exports``.

Renaming the row (rather than letting a new one be created) keeps its id, so the permissions, group
grants and admin log entries that point at it follow the model. Left alone when an ``exports`` row exists already (and the other way round going back).
"""
from django.db import migrations

MODELS = ("export",)


def _relabel(apps, schema_editor, old_label: str, new_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    rows = ContentType.objects.using(schema_editor.connection.alias)
    taken = set(rows.filter(app_label=new_label, model__in=MODELS).values_list("model", flat=True))
    rows.filter(app_label=old_label, model__in=set(MODELS) - taken).update(app_label=new_label)
    ContentType.objects.clear_cache()  # get_by_natural_key() caches content types by (app_label, model)


def to_exports(apps, schema_editor):
    _relabel(apps, schema_editor, "annotations", "exports")


def to_annotations(apps, schema_editor):
    _relabel(apps, schema_editor, "exports", "annotations")


class Migration(migrations.Migration):

    dependencies = [
        ("exports", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(to_exports, to_annotations),
    ]
