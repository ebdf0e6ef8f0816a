"""Talking to the apiserver, for every component and the CLI; imports no component.

api         the typed client: objects in, objects out, kubelite errors raised
coalesce    concurrent creates on one client sent together, in one CreateMany
watches     many watches of one client over one WatchMany stream
channel     one place that opens a gRPC channel (mutual TLS over TCP or a unix socket)
config      where the apiserver is and who we are: flags, environment, the config file and its current cluster
kubeconfig  a kubectl kubeconfig for the REST port: the cluster CA and a user's client certificate, inline
tls         TLS material for clients and servers, re-read when renewed; plain words for failed handshakes
pki         keys, certificate requests, the signing CA, identities (user = CN, groups = O)
tokens      join tokens: K10<CA hash>::<id>.<secret>
informer    list, then watch from the returned revision, into an indexed local cache
workqueue   a de-duplicating work queue with rate-limited retries
retry       retry_on_conflict: the one read-modify-write loop; create_or_update
leader      leader election through a Lease
events      Event recording
"""
