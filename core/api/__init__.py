"""REST API building blocks shared by every app, and the core resources (audit, nodes)."""
