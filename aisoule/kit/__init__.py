"""Domain-free helpers: crypto, time, phone numbers, JSON responses. Never imports a domain."""
