"""Routes of this app's REST resources (registered into the site's /api/v1/ router)."""

from rest_framework.routers import SimpleRouter

from plugins_app.api.views import PluginCommandViewSet, PluginRolloutViewSet, PluginViewSet

router = SimpleRouter()
router.register("plugins", PluginViewSet)
router.register("plugin-commands", PluginCommandViewSet)
router.register("plugin-rollouts", PluginRolloutViewSet)
