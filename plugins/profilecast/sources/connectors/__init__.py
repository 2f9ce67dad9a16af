"""Connectors: API clients for sources read over HTTP, and dialects that map other
systems' record shapes onto profilecast's source entities."""
