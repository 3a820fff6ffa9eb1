"""Notifications name what they are about by key; Dispute moves to the moderation app.

``Notification.dispute`` (a foreign key up to a model that now lives in an app above annotations)
becomes ``subject``, a key such as ``dispute:12``: every row's link is copied before the column
goes, and the way back restores it. Dispute leaves annotations' state only (moderation's 0001 took
it over with the same table), so nothing of it is dropped.
"""
from django.db import migrations, models

PREFIX = "dispute:"


def link_to_subject(apps, schema_editor):
    Notification = apps.get_model("annotations", "Notification")
    rows = Notification.objects.using(schema_editor.connection.alias).filter(dispute__isnull=False)
    for pk, dispute_id in rows.values_list("pk", "dispute_id").iterator():
        Notification.objects.using(schema_editor.connection.alias).filter(pk=pk).update(
            subject=f"{PREFIX}{dispute_id}")


def subject_to_link(apps, schema_editor):
    Notification = apps.get_model("annotations", "Notification")
    rows = Notification.objects.using(schema_editor.connection.alias).filter(subject__startswith=PREFIX)
    for pk, subject in rows.values_list("pk", "subject").iterator():
        key = subject[len(PREFIX):]
        if key.isdigit():
            Notification.objects.using(schema_editor.connection.alias).filter(pk=pk).update(dispute_id=int(key))


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0016_move_data_value_models"),
        ("moderation", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="subject",
            field=models.CharField(
                blank=True, db_index=True, max_length=100,
                help_text="What it is about, as a key (e.g. dispute:12), so a sender can find its notifications.",
            ),
        ),
        migrations.RunPython(link_to_subject, subject_to_link),
        migrations.RemoveField(model_name="notification", name="dispute"),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Dispute")],
            database_operations=[],
        ),
    ]
