"""Test service: redis (filled in by its owner)."""
