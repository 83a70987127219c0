"""Site URLs: admin, the /api/v1/ router, OpenAPI docs, /health, /metrics and the console."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from core import views as core_views
from core.api.urls import router as core_router
from plugins_app.api.urls import router as plugins_router
from plugins_app.discovery.api.urls import router as discovery_router
from plugins_app.events.api.urls import router as events_router
from scheduler_app.api.urls import router as scheduler_router

admin.site.site_header = "Chameleon"
admin.site.site_title = "Chameleon admin"
admin.site.index_title = "Control plane"

# One /api/v1/ root that lists every app's resources.
api_router = DefaultRouter()
for app_router in (core_router, plugins_router, events_router, discovery_router, scheduler_router):
    api_router.registry.extend(app_router.registry)

urlpatterns = [
    path("", core_views.home, name="home"),
    path("health", core_views.health, name="health"),
    path("metrics", core_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema")), name="swagger-ui"),
    # Seed-compatible management API (SPEC §8); /plugins/events/ before /plugins/<name>/.
    path("plugins/events/", include("plugins_app.events.seed_urls")),
    path("plugins/", include("plugins_app.seed_urls")),
    path("p/", include("plugins_app.endpoint_urls")),  # service plugins' endpoints
    path("scheduler/", include("scheduler_app.seed_urls")),
    path("dashboard/", include("plugins_app.events.urls")),  # the live event dashboard
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
