"""Console pages of the event bus, included at /dashboard/."""

from django.urls import path

from plugins_app.events import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("overview", views.overview_json, name="dashboard-overview"),
]
