"""Polls: create, vote exactly once (optionally with randomized-response privacy), reports."""
