"""TextEmbedding, CampaignDataValueReport, DataValue and GenerationJob moved to the datavalue app.

State only: datavalue's 0001 takes them over with the same tables (``db_table``), so nothing is dropped.
"""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0015_api_tokens"),
        ("datavalue", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="GenerationJob"),
                migrations.DeleteModel(name="DataValue"),
                migrations.DeleteModel(name="CampaignDataValueReport"),
                migrations.DeleteModel(name="TextEmbedding"),
            ],
            database_operations=[],
        ),
    ]
