"""The four models' content types move from app label ``annotations`` to ``datavalue``.

Renaming the rows (rather than letting new ones be created) keeps their ids, so the permissions, group
grants and admin log entries that point at them follow the models. A model whose ``datavalue`` content
type exists already is left alone (and the other way round when going back).
"""
from django.db import migrations

MODELS = ("textembedding", "campaigndatavaluereport", "datavalue", "generationjob")


def _relabel(apps, schema_editor, old_label: str, new_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    rows = ContentType.objects.using(schema_editor.connection.alias)
    taken = set(rows.filter(app_label=new_label, model__in=MODELS).values_list("model", flat=True))
    rows.filter(app_label=old_label, model__in=set(MODELS) - taken).update(app_label=new_label)
    # get_by_natural_key() caches content types by (app_label, model).
    ContentType.objects.clear_cache()


def to_datavalue(apps, schema_editor):
    _relabel(apps, schema_editor, "annotations", "datavalue")


def to_annotations(apps, schema_editor):
    _relabel(apps, schema_editor, "datavalue", "annotations")


class Migration(migrations.Migration):

    dependencies = [
        ("datavalue", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(to_datavalue, to_annotations),
    ]
