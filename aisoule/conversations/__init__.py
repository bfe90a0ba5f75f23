"""Conversations: a contact's thread with one business number and its 24-hour window (the inbox
grows from here)."""
