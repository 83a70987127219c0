"""Websocket routes; each app adds its consumers here."""

from plugins_app.events.routing import websocket_urlpatterns as events_websockets

websocket_urlpatterns: list = [*events_websockets]
