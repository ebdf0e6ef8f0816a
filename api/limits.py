"""Limits every client and the apiserver agree on."""

# The largest object the apiserver stores (Kubernetes' limit); `apply` refuses bigger ones before
# writing anything.
MAX_OBJECT_BYTES = 1536 * 1024

# One CreateMany request (`kubelite apply` sends its creates in chunks within both): more is refused whole, with
# RESOURCE_EXHAUSTED naming the limit. Below the apiserver's largest request (3 MiB), so that the refusal is its
# own clear one; any one object (MAX_OBJECT_BYTES) fits.
MAX_CREATE_MANY_OBJECTS = 1000
MAX_CREATE_MANY_BYTES = 2 * 1024 * 1024
# One BindMany request (the scheduler sends its binds in flight together, up to this many).
MAX_BIND_MANY_BINDINGS = 1000
# One CreateTokenMany request (a kubelet asks for its pods' tokens together, up to this many).
MAX_TOKEN_MANY_REQUESTS = 1000
