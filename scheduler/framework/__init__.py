"""The scheduling framework: plugin interfaces, per-pod and per-node facts, the runner, the configuration."""
