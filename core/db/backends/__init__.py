"""Database backends: django-prometheus's, with connection reuse in web processes."""
