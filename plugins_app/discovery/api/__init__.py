"""REST API of this app: serializers, views and the router registered under /api/v1/."""
