"""Garbage collection by ownerReferences, and namespace deletion."""
