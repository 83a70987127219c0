"""Site URLs: admin, the /api/v1/ router, OpenAPI docs, /health, /metrics and the console."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from core import views as core_views
from core.api.urls import router as core_router

admin.site.site_header = "Chameleon"
admin.site.site_title = "Chameleon admin"
admin.site.index_title = "Control plane"

# One /api/v1/ root that lists every app's resources.
api_router = DefaultRouter()
for app_router in (core_router,):
    api_router.registry.extend(app_router.registry)

urlpatterns = [
    path("", core_views.home, name="home"),
    path("health", core_views.health, name="health"),
    path("metrics", core_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema")), name="swagger-ui"),
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
