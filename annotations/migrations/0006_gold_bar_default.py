from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotations", "0005_quality")]

    operations = [
        migrations.AlterField(
            model_name="campaign",
            name="gold_bar",
            field=models.FloatField(
                default=0.5,
                help_text="Wilson 95% lower bound of gold accuracy below which an expert is flagged and slashed (20+ gold). "
                "0.5 spares honest experts (80% right on 20 gold gives 0.58) and catches random clicking (50% gives 0.30).",
            ),
        ),
    ]
