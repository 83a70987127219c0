"""Seed-compatible management routes (SPEC §8 table), answering with the seed's envelope."""

from django.urls import path

from plugins_app.events.seed_views import PublishTestEventView

urlpatterns = [
    path("test", PublishTestEventView.as_view(), name="seed-events-test"),
]
