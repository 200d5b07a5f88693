"""The tus 1.0.0 protocol engine.

This package imports nothing else of ``relaypacs_tus``: stores, hooks and the app depend on it, never the
other way round (a test enforces the rule). Only :mod:`relaypacs_tus.tus.routes` knows about Starlette.
"""
