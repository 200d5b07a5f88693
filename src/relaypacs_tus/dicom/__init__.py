"""DICOM content layer: classify an upload, validate DICOM Part 10, wrap photos as Secondary Capture.

Pure and blocking (pydicom, pillow, stdlib); callers run these functions in a worker thread.
"""
