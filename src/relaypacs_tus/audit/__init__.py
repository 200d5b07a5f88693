"""The audit log (repudiation): append-only, timestamped (UTC, RFC 3339), hash-chained JSON lines.

:mod:`.chain` makes and checks entries, :mod:`.log` appends them to a local folder or to the store's
documents (S3), :mod:`.hooks` records the upload lifecycle by decorating the engine's hooks.
"""

from .chain import VerifyReport, verify_entries
from .log import AuditLog, DocumentSink, FileSink

__all__ = ["AuditLog", "DocumentSink", "FileSink", "VerifyReport", "verify_entries"]
