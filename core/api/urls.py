"""Routes of the core API resources (registered into the site's /api/v1/ router)."""

from rest_framework.routers import SimpleRouter

from core.api.views import AuditEntryViewSet, NodeViewSet

router = SimpleRouter()
router.register("audit", AuditEntryViewSet)
router.register("nodes", NodeViewSet)
