"""Persistent volumes: the PV controller and kubelite's local-path provisioner.

plan         pure decisions: bind, phases, reclaim, protection finalizers, the provisioned volume
controller   the PV controller (binding, phases, reclaim Delete/Retain, pvc- and pv-protection)
provisioner  the local-path provisioner: a hostPath volume on the node chosen for the claim's first pod
"""
