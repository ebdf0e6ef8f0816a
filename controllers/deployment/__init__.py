"""The Deployment controller: ReplicaSets per pod template, rolled by RollingUpdate or Recreate."""
