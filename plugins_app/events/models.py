"""Event bus models (stored events, outbox) -- added by the event bus issue."""
