"""A data purchase's export is now ``exports.Export`` (the same table): state only, the foreign key is unchanged."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("exports", "0001_initial"),
        ("rewards", "0008_claim_adjustment_pending"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="datapurchase",
                    name="export",
                    field=models.OneToOneField(
                        help_text="The export built for the buyer.", on_delete=django.db.models.deletion.PROTECT,
                        related_name="purchase", to="exports.export",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
