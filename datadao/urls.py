from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotations import views as annotation_views
from datadao.middleware import csp_override

SWAGGER_CDN = "https://cdn.jsdelivr.net"

api_v1 = [
    path("", include("annotations.urls")),
    path("", include("rewards.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI comes from its CDN and its page script from ?script (no inline script).
    path("docs/", csp_override(
        SpectacularSwaggerSplitView.as_view(url_name="schema"), script_src=["'self'", SWAGGER_CDN],
        style_src=["'self'", SWAGGER_CDN, "'unsafe-inline'"], img_src=["'self'", "data:", SWAGGER_CDN],
    ), name="swagger-ui"),
]

# The API first: its requests (most of all, the experts' rating loop) then
# skip trying every page pattern; no page lives under api/v1/.
urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("", annotation_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("annotations.pages")),
    path("wallet/", include("rewards.pages")),
]

# Error answers: JSON in the API's error shape under /api/, styled pages elsewhere.
handler400 = "datadao.errors.bad_request"
handler403 = "datadao.errors.permission_denied"
handler404 = "datadao.errors.page_not_found"
handler500 = "datadao.errors.server_error"
