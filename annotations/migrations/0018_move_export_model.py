"""Export moved to the exports app.

State only: exports' 0001 took it over with the same table (``db_table``), and rewards' 0009 points the data
purchase at it there, so nothing is dropped.
"""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0017_notification_subject_dispute_moved"),
        ("exports", "0001_initial"),
        ("rewards", "0009_purchase_export_moved"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Export")],
            database_operations=[],
        ),
    ]
