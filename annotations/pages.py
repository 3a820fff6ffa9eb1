"""Annotation browser pages (rating, history, lab dashboard)."""
app_name = "annotations_pages"

urlpatterns: list = []
