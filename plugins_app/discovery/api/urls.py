"""Routes of this app's REST resources (registered into the site's /api/v1/ router)."""

from rest_framework.routers import SimpleRouter

from plugins_app.discovery.api.views import AlertRuleViewSet, AlertViewSet, ServiceViewSet

router = SimpleRouter()
router.register("services", ServiceViewSet, basename="service")
router.register("alerts/rules", AlertRuleViewSet, basename="alertrule")
router.register("alerts", AlertViewSet, basename="alert")
