"""The user's own Instagram history: reading an export and importing its posts."""
