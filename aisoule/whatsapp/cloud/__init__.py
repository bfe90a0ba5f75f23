"""The real WhatsApp provider: Meta's Cloud API (Graph API) over aiohttp."""
