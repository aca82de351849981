"""What each kind of source gives: Prometheus pages, the kubelet's summary, the node."""
