"""Faults and the recoveries they test.

faults      fault drivers: stop a node, cut it off, restart a component, on the lab or over ssh on VMs
scenarios   a fault, the recovery the design promises, and a timed report
"""
