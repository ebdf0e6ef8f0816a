"""Putting kubelite on machines.

lab/       a whole cluster on one machine: network namespaces (network), the plan (plan), supervised
           daemons (procs), up and down (cluster)
node/      one node's bootstrap, shared by the lab and the VMs: containerd config and start (containerd),
           control plane and worker bootstrap (bootstrap), the control plane's certificates (certs), a
           node's join with a join token (join), process or systemd launchers (launch), and
           kubelite's own OCI images built from their sources beside them (images, images/pause.c)
vm/        a VM lab: libvirt, virtlogd and Vagrant inside a network namespace of their own; the box, the
           offline wheelhouse
systemd/   unit files for VMs
vagrant/   the Vagrantfile and its provisioning
addons/    cluster add-ons (DNS)
"""
