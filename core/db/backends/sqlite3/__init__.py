"""SQLite backend (django-prometheus instrumented) that reuses connections in web processes."""
