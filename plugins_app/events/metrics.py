"""The event bus's Prometheus metrics (SPEC §7 `event_bus_*`), defined through core.metrics."""

from core.metrics import counter, gauge

published = counter("event_bus_events_published", "Events published on this node.")
delivered = counter("event_bus_events_delivered", "Events delivered to subscription handlers.")
handler_errors = counter(
    "event_bus_handler_errors", "Event handlers that raised or passed their timeout.", ["reason"]
)
dropped = counter(
    "event_bus_events_dropped", "Events dropped because a bounded queue was full.", ["queue"]
)
queue_size = gauge("event_bus_queue_size", "Events waiting in subscription queues.")
subscriptions = gauge("event_bus_subscriptions", "Active subscriptions on this node.")
remote_received = counter("event_bus_events_received", "Events received from other nodes.", ["transport"])
transport_errors = counter("event_bus_transport_errors", "Failed sends to or reads from the transport.", ["transport"])
outbox_pending = gauge("event_bus_outbox_pending", "Events stored but not yet sent to the transport.")
outbox_resent = counter(
    "event_bus_outbox_resent", "Orphaned outbox events (their publisher gone) re-sent by a sweeper.", ["transport"]
)
duplicates = counter(
    "event_bus_events_duplicate", "Events received again (an id seen recently) and dropped.", ["transport"]
)
