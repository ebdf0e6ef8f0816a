"""The ReplicaSet controller: keep `replicas` pods matching the selector."""
