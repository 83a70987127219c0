"""Seed-compatible management routes (SPEC §8 table), answering with the seed's envelope."""

from django.urls import path

from plugins_app.seed_views import PluginRestartView, PluginStatusView

urlpatterns = [
    path("status", PluginStatusView.as_view(), name="seed-plugin-status"),
    path("<str:name>/restart", PluginRestartView.as_view(), name="seed-plugin-restart"),
]
