from django.apps import AppConfig


def _late(module, name: str):
    """The service ``module.name``, looked up at each call (so a test's monkeypatch of it holds)."""
    return lambda **kwargs: getattr(module, name)(**kwargs)


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = "Rewards"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the Celery tasks, so services can queue them by name (datadao.jobs) in any process.
        from rewards import tasks  # noqa: F401

        # The campaign state machine lives in annotations and knows nothing of
        # money; closing a campaign ends its epoch and returns unspent escrow.
        from annotations.services import campaign_transition_hooks
        from rewards.settlement import on_campaign_close

        if on_campaign_close not in campaign_transition_hooks["close"]:
            campaign_transition_hooks["close"].append(on_campaign_close)

        # What annotations asks of the money side (annotations never imports rewards).
        from annotations import money
        from rewards import selectors

        money.provide(money.RewardsSide(
            bonded_stake=_late(selectors, "expert_bonded_stake"),
            bonded_stakes=_late(selectors, "experts_bonded_stake"),
            campaign_earnings=_late(selectors, "campaign_earnings"),
        ))
