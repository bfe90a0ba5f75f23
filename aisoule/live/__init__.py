"""The live channel: events a workspace's open browsers receive (GET /api/events, Server-Sent
Events), numbered in the database so a reconnect replays exactly what it missed."""
