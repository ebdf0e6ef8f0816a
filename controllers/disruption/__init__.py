"""The disruption controller: each PodDisruptionBudget's status, which the eviction subresource checks."""
