"""Seed-compatible management routes (SPEC §8 table), answering with the seed's envelope."""

urlpatterns: list = []
