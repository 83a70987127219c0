"""Routes of this app's REST resources (registered into the site's /api/v1/ router)."""

from rest_framework.routers import SimpleRouter

from plugins_app.events.api.views import EventTypeViewSet, EventViewSet

router = SimpleRouter()
router.register("events", EventViewSet, basename="event")
router.register("event-types", EventTypeViewSet, basename="event-type")
