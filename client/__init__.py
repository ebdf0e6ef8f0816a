"""Talking to the apiserver, for every component and the CLI; imports no component.

api         the typed client: objects in, objects out, kubelite errors raised
channel     one place that opens a gRPC channel (plain, TLS, unix socket)
config      where the apiserver is: flags, environment, the config file and its current cluster
informer    list, then watch from the returned revision, into an indexed local cache
workqueue   a de-duplicating work queue with rate-limited retries
retry       retry_on_conflict: the one read-modify-write loop; create_or_update
leader      leader election through a Lease
events      Event recording
"""
