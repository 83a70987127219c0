"""Routes of service plugins' endpoints: /p/<plugin>/<rest>."""

from django.urls import path, re_path

from plugins_app.http import plugin_endpoint

urlpatterns = [
    path("<str:plugin>/", plugin_endpoint, name="plugin-endpoint-root"),
    re_path(r"^(?P<plugin>[a-z][a-z0-9_-]*)/(?P<rest>.*)$", plugin_endpoint, name="plugin-endpoint"),
]
