"""Node lifecycle: lease-based node health, taints, and NoExecute evictions."""
