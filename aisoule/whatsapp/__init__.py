"""WhatsApp: the provider interface, Meta's Cloud API client and the bundled emulator."""
