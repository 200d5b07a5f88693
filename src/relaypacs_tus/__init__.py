"""RelayPACS-tus: a tus 1.0.0 resumable-upload relay from the edge to a PACS."""

__version__ = "0.1.0"
