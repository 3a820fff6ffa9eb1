from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = "Rewards"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The campaign state machine lives in annotations and knows nothing of
        # money; closing a campaign ends its epoch and returns unspent escrow.
        from annotations.services import campaign_transition_hooks
        from rewards.settlement import on_campaign_close

        if on_campaign_close not in campaign_transition_hooks["close"]:
            campaign_transition_hooks["close"].append(on_campaign_close)
