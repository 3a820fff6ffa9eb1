"""Rewards browser pages (wallet)."""
app_name = "rewards_pages"

urlpatterns: list = []
