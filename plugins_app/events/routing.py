"""Websocket routes of the event bus (included in chameleon_site/routing.py)."""

from django.urls import path

from plugins_app.events.consumers import EventStreamConsumer
from plugins_app.events.ws_auth import TokenAuthMiddleware

websocket_urlpatterns = [
    path("ws/events/", TokenAuthMiddleware(EventStreamConsumer.as_asgi())),
]
