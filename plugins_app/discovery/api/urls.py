"""Routes of this app's REST resources (registered into the site's /api/v1/ router)."""

from rest_framework.routers import SimpleRouter

router = SimpleRouter()
