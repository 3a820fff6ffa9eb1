from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from annotations import pages as annotation_pages
from annotations import urls as annotation_urls
from annotations import views as annotation_views
from datadao.middleware import csp_override
from datavalue import urls as datavalue_urls
from exports import urls as export_urls
from labs import pages as lab_pages
from moderation import pages as moderation_pages
from moderation import urls as moderation_urls

api_v1 = [
    # One namespace for the routes of annotations, datavalue, exports and moderation: the names predate the split.
    path("", include((annotation_urls.urlpatterns + datavalue_urls.urlpatterns + export_urls.urlpatterns
                      + moderation_urls.urlpatterns,
                      annotation_urls.app_name))),
    path("", include("rewards.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and ReDoc come from the app's static files (drf-spectacular-sidecar), so the docs work
    # offline; Swagger's page script comes from ?script (no inline script). Both set inline styles.
    path("docs/", csp_override(
        SpectacularSwaggerSplitView.as_view(url_name="schema"), style_src=["'self'", "'unsafe-inline'"],
    ), name="swagger-ui"),
    # ReDoc builds its search index in a worker started from a blob: URL.
    path("redoc/", csp_override(
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        style_src=["'self'", "'unsafe-inline'"], worker_src=["'self'", "blob:"],
    ), name="redoc"),
]

# The API first: its requests (most of all, the experts' rating loop) then
# skip trying every page pattern; no page lives under api/v1/.
urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("", annotation_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include((annotation_pages.urlpatterns + lab_pages.urlpatterns + moderation_pages.urlpatterns,
                      annotation_pages.app_name))),
    path("wallet/", include("rewards.pages")),
]

# Error answers: JSON in the API's error shape under /api/, styled pages elsewhere.
handler400 = "datadao.errors.bad_request"
handler403 = "datadao.errors.permission_denied"
handler404 = "datadao.errors.page_not_found"
handler500 = "datadao.errors.server_error"
