"""Consent: topics, signed one-click unsubscribe links, and the pages that honour them."""
