"""Meta's webhooks (Meta → us): verified over the raw bytes, stored once per event, applied by a
worker, and handed to the parts that react.

signature (who is calling) → parsing (bytes to events) → service (store once) → tasks/applying
(the worker applies each event to the account that proved it) → handoff (what reacts, in order).
"""
