"""Service registry models (database back end) -- added by the service management issue."""
