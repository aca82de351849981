"""Log paths name the pod: both kubelet layouts, odd names, and paths that are neither."""

from __future__ import annotations

import pytest

from kk_logs.metadata.pod_path import PathMeta, parse_log_path

UID = "0f4c5a6e-1b2d-4e8f-9a0b-1c2d3e4f5a6b"
CID = "3b1f" + "0" * 56 + "beef"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            f"/var/log/pods/shop_checkout-7d9f-abcde_{UID}/app/0.log",
            PathMeta("shop", "checkout-7d9f-abcde", "app", pod_uid=UID, restart_count=0),
        ),
        (
            f"/var/log/pods/kube-system_coredns-5d78c9869d-x2x7q_{UID}/coredns/17.log",
            PathMeta(
                "kube-system", "coredns-5d78c9869d-x2x7q", "coredns", pod_uid=UID, restart_count=17
            ),
        ),
        # A rotated file still belongs to the same restart; so does its compressed copy.
        (
            f"/var/log/pods/a_b_{UID}/c/3.log.20261126-101500",
            PathMeta("a", "b", "c", pod_uid=UID, restart_count=3),
        ),
        (
            f"/var/log/pods/a_b_{UID}/c/3.log.20261126-101500.gz",
            PathMeta("a", "b", "c", pod_uid=UID, restart_count=3),
        ),
        # Dotted pod names (DNS subdomains) and a container name with dashes.
        (
            f"/host/var/log/pods/ns-1_web.v2.example_{UID}/side-car-2/1.log",
            PathMeta("ns-1", "web.v2.example", "side-car-2", pod_uid=UID, restart_count=1),
        ),
        # Static pods: the uid segment is the kubelet's config hash, not a UUID.
        (
            "/var/log/pods/kube-system_etcd-node-a_5f0b1cbe9b8e6a7e6c44ba1cb3c10c0a/etcd/0.log",
            PathMeta(
                "kube-system",
                "etcd-node-a",
                "etcd",
                pod_uid="5f0b1cbe9b8e6a7e6c44ba1cb3c10c0a",
                restart_count=0,
            ),
        ),
        (
            f"/var/log/containers/checkout-7d9f-abcde_shop_app-{CID}.log",
            PathMeta("shop", "checkout-7d9f-abcde", "app", container_id=CID),
        ),
        # The container id is anchored at the end, so dashes in the container name survive.
        (
            f"/var/log/containers/web-0_default_log-shipper-v2-{CID}.log",
            PathMeta("default", "web-0", "log-shipper-v2", container_id=CID),
        ),
    ],
)
def test_kubelet_log_paths_are_parsed(path: str, expected: PathMeta) -> None:
    """Each kubelet layout yields namespace, pod, container and uid/restart or id."""
    assert parse_log_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/var/log/syslog",
        "/var/log/pods/not-three-parts/app/0.log",
        f"/var/log/pods/a_b_c_{UID}/app/0.log",  # four parts: not a pod directory
        f"/var/log/pods/a_b_{UID}/app/current.log",  # not a restart number
        f"/var/log/pods/a_b_{UID}/app/0.txt",
        "/var/log/containers/web-0_default_app-nothex.log",
        f"/var/log/containers/web-0_default_app-{CID[:-1]}.log",  # 63 hex digits
        f"/var/log/containers/web-0_app-{CID}.log",  # namespace missing
        "0.log",
    ],
)
def test_paths_in_neither_layout_give_none(path: str) -> None:
    """Anything that is not a kubelet log path is rejected rather than guessed at."""
    assert parse_log_path(path) is None
