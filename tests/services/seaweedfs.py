"""Test service: seaweedfs (filled in by its owner)."""
