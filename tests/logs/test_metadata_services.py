"""Services whose selectors match a pod, scoped to its namespace and kept current."""

from __future__ import annotations

from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted
from kk_common.k8s.model import PodMeta, ServiceMeta, pod_from_dict, service_from_dict
from kk_common.k8s.services import ServiceIndex
from tests.logs.fake_apiserver import make_pod, make_service


def svc(name: str, selector: dict[str, str] | None, namespace: str = "shop") -> ServiceMeta:
    return service_from_dict(make_service(name, namespace=namespace, selector=selector))


def web_pod(namespace: str = "shop") -> PodMeta:
    return pod_from_dict(
        make_pod("web-1", namespace=namespace, labels={"app": "web", "tier": "front"})
    )


def test_selector_must_be_a_subset_of_the_pod_labels() -> None:
    """All selector pairs must match; extra pod labels do not matter."""
    index = ServiceIndex()
    index.apply(
        Relisted(
            (
                svc("web", {"app": "web"}),
                svc("front", {"app": "web", "tier": "front"}),
                svc("back", {"app": "web", "tier": "back"}),
                svc("other", {"app": "other"}),
            ),
            "10",
        )
    )
    assert index.services_for(web_pod()) == ("front", "web")


def test_empty_selector_matches_nothing() -> None:
    """A selector-less Service has hand-managed endpoints and selects no pod."""
    index = ServiceIndex()
    index.apply(Added(svc("external-db", None)))
    index.apply(Added(svc("empty", {})))
    assert index.services_for(web_pod()) == ()


def test_services_only_select_pods_in_their_namespace() -> None:
    """The same selector in another namespace does not name this pod."""
    index = ServiceIndex()
    index.apply(Added(svc("web", {"app": "web"}, namespace="staging")))
    assert index.services_for(web_pod("shop")) == ()
    assert index.services_for(web_pod("staging")) == ("web",)


def test_updates_and_deletes_are_reflected() -> None:
    """MODIFIED changes the selector, DELETED removes the service, relist replaces all."""
    index = ServiceIndex()
    index.apply(Added(svc("web", {"app": "nope"})))
    assert index.services_for(web_pod()) == ()
    index.apply(Modified(svc("web", {"app": "web"})))
    assert index.services_for(web_pod()) == ("web",)
    index.apply(Deleted(svc("web", {"app": "web"})))
    assert index.services_for(web_pod()) == ()
    index.apply(Added(svc("a", {"app": "web"})))
    index.apply(Relisted((svc("b", {"tier": "front"}),), "99"))
    assert index.services_for(web_pod()) == ("b",)
    index.apply(Bookmarked("120"))
    assert index.resource_version == "120" and index.synced
