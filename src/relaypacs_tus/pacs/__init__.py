"""PACS delivery: STOW-RS (DICOMweb), Orthanc REST and DIMSE C-STORE destinations behind one protocol.

Async API; the blocking libraries (requests/dicomweb-client, pynetdicom, botocore) run in worker threads,
bounded per destination by an ``anyio.CapacityLimiter``.
"""
