"""Access: API keys and scopes, the fair share per client."""
