"""Webhooks: which URLs a run may name (policy), what is sent (payload), and the sender
that delivers the outbox at least once."""
