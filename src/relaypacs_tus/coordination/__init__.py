"""Shared state for limits and single-use grants: interfaces (:mod:`.base`) and the in-process
implementation (:mod:`.memory`). A Redis implementation fills the same interfaces for several replicas."""
