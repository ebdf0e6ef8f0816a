"""Kubernetes' REST API, a second face of the apiserver beside gRPC, in the same process.

server     the aiohttp application: authentication, the authorization hook, then the registry's verbs, watch
           from the watch cache, subresources (status, scale, binding, eviction, log, serviceaccounts/token)
request    what a path and method ask for: verb, kind, namespace, name, subresource
discovery  /api, /apis and their group versions, legacy and aggregated (apidiscovery.k8s.io/v2)
openapi    OpenAPI v3 documents and the v2 one: each kind's paths and the query parameters kubectl checks for
openapi_pb the v2 document in gnostic's protobuf encoding, the only one kubectl takes for v2
status     errors as Kubernetes Status objects with their HTTP codes
patch      JSON patch, JSON merge patch, strategic merge patch with Kubernetes' merge keys
table      the Table format with `kubelite get`'s columns
tokens     the TokenRequest (serviceaccounts/token) as the gRPC CreateToken request and back
k8sproto   Kubernetes' protobuf encoding, which kubectl's typed clients send (create namespace, deployment, token...)
streams    pods/exec and pods/attach over WebSocket (v5.channel.k8s.io, v4), proxied to the kubelet
"""
