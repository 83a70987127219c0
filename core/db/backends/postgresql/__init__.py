"""PostgreSQL backend (django-prometheus instrumented) that pools connections in web processes."""
