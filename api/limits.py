"""Limits every client and the apiserver agree on."""

# The largest object the apiserver stores (Kubernetes' limit); `apply` refuses bigger ones before
# writing anything.
MAX_OBJECT_BYTES = 1536 * 1024
