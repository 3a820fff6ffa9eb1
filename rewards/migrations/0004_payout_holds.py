# Payout holds: quality flags hold an epoch reward for a moderator; the plan stores quality_low and g(s).

import django.db.models.deletion
import django.db.models.expressions
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('rewards', '0003_data_purchases'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='HeldPayout',
            fields=[
            ],
            options={
                'verbose_name': 'payout on hold',
                'verbose_name_plural': 'payouts on hold',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('rewards.epochreward',),
        ),
        migrations.RemoveConstraint(
            model_name='epoch',
            name='epoch_budget_accounted',
        ),
        migrations.RemoveConstraint(
            model_name='epoch',
            name='epoch_amounts_nonnegative',
        ),
        migrations.AddField(
            model_name='epoch',
            name='held_total',
            field=models.BigIntegerField(default=0, help_text='Sum of the rewards put on hold at plan time (quality flags). They stay in the campaign escrow, reserved, until a moderator releases (pays) or forfeits (leaves to the lab) each one.'),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='hold_note',
            field=models.TextField(blank=True, db_default='', default='', help_text="The moderator's reason for releasing or forfeiting the hold."),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='hold_reasons',
            field=models.JSONField(blank=True, db_default=[], default=list, help_text='Quality flags that put the reward on hold when it was planned, e.g. ["collusion"]; the statistics behind them are the rater\'s quality evidence in the campaign.'),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='hold_resolved_at',
            field=models.DateTimeField(blank=True, help_text='When the hold was released or forfeited.', null=True),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='hold_resolved_by',
            field=models.ForeignKey(blank=True, help_text='The moderator who released or forfeited the held reward.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='hold_state',
            field=models.CharField(choices=[('none', 'Not held'), ('held', 'On hold: waiting for a moderator'), ('released', 'Released by a moderator and paid'), ('forfeited', 'Forfeited by a moderator: left to the lab')], db_default='none', db_index=True, default='none', help_text='Held: a quality flag stopped settlement from paying this reward until a moderator releases it (paid then) or forfeits it (it stays in the campaign escrow for the lab).', max_length=16),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='quality_low',
            field=models.FloatField(blank=True, help_text="Lower bound of quality q_i that pay was judged on: pay needs it above the campaign's q_min. Empty for rewards planned before it was stored.", null=True),
        ),
        migrations.AddField(
            model_name='epochreward',
            name='stake_factor',
            field=models.FloatField(db_default=1.0, default=1.0, help_text='Stake multiplier of the weight, g(s) = 1 + beta * s / (s + s_half): 1 to 1 + beta.'),
        ),
        migrations.AlterField(
            model_name='epoch',
            name='experts_paid',
            field=models.PositiveIntegerField(default=0, help_text='Experts with a positive reward that settlement pays (rewards on hold not counted).'),
        ),
        migrations.AlterField(
            model_name='epoch',
            name='paid_total',
            field=models.BigIntegerField(default=0, help_text='Sum of the expert rewards settlement pays, as planned; rewards put on hold are not in it (see held total), nor are they added when a moderator releases them.'),
        ),
        migrations.AddConstraint(
            model_name='epoch',
            constraint=models.CheckConstraint(condition=models.Q(('budget', django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(models.F('paid_total'), '+', models.F('held_total')), '+', models.F('dust')), '+', models.F('retained')))), name='epoch_budget_accounted'),
        ),
        migrations.AddConstraint(
            model_name='epoch',
            constraint=models.CheckConstraint(condition=models.Q(('dust__gte', 0), ('held_total__gte', 0), ('paid_total__gte', 0), ('retained__gte', 0)), name='epoch_amounts_nonnegative'),
        ),
        migrations.AddConstraint(
            model_name='epochreward',
            constraint=models.CheckConstraint(condition=models.Q(('hold_state', 'none'), ('amount__gt', 0), _connector='OR'), name='epochreward_hold_needs_amount'),
        ),
        migrations.AddConstraint(
            model_name='epochreward',
            constraint=models.CheckConstraint(condition=models.Q(('hold_state__in', ['none', 'held']), ('hold_resolved_at__isnull', False), _connector='OR'), name='epochreward_hold_resolved_at'),
        ),
    ]
