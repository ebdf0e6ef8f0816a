"""The scheduler: framework (interfaces, runner), plugins, queue, cache, preemption and the daemon."""
