"""Test service: orthanc (filled in by its owner)."""
