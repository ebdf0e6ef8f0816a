"""Storage for the apiserver: a small revisioned key-value interface and its etcd implementation.

interface    the Storage protocol, write ops (Create, Update, Delete), errors, events
etcd         EtcdStorage over aetcd's connection and stubs
groupcommit  batches concurrent commits into shared etcd transactions
transformed  encrypts configured resources' values (Secrets) on their way to etcd, decrypts them back
"""
