"""The Job controller: pods run to completion, counted once each through a tracking finalizer."""
