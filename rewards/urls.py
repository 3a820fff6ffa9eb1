"""Rewards API routes (ledger, stakes, epochs, claims)."""
app_name = "rewards_api"

urlpatterns: list = []
