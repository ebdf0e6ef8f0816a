"""Vagrant VMs on this machine, with nothing outside a project-made network namespace.

plan.py       pure: a VM lab's names and paths, the libvirt configs, the box's cache key,
              the KVM-or-emulation choice, where the wheelhouse's requirements come from
box.py        build (or reuse from cache) the Debian box with every node package baked in
wheelhouse.py the locked Python dependencies plus a kubelite wheel, for offline installs
lab.py        up / down: a network namespace, libvirtd and virtlogd inside it, vagrant run there
"""
