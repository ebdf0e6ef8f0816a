"""The names of kubelite's own images, which every node has: the pod sandbox (pause) and busybox.

They are built by deploy/node/images.py and imported into each node's
containerd; the kubelet only needs their names (the fake runtime preloads them).
"""

from __future__ import annotations

PAUSE_IMAGE = "localhost:5000/kubelite/pause:3.9"
BUSYBOX_IMAGE = "localhost:5000/kubelite/busybox:1.35"
