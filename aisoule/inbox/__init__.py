"""The team inbox: replies, read marks, search and ticks across conversations and messages."""
