"""Members of a workspace: roles, invitations, availability for the inbox."""
