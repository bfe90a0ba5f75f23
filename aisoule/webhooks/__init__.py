"""Meta's webhooks (Meta → us): verified over the raw bytes, stored once per event, applied by a
worker."""
