"""The end-to-end benchmark behind ``make bench`` (entry point: ``benchmarks/bench.py``).

Modules, in the order a run uses them:

* ``pods``: the node's pods (names, uids, labels), shared by the log writer and the fake
  API server so that every file has its pod's metadata.
* ``loglines``: CRI lines in the kubelet's format, each logical line with a unique token.
* ``writers``: writes them, all at once (catch-up) or at a fixed rate (steady).
* ``processes``: child processes that never outlive the benchmark, and their /proc figures.
* ``stack``: the receiver, the fake API server, the shipper and the logs service.
* ``delivery``: what the receiver stored, checked token by token.
* ``scenarios``: the four scenarios; ``report``: tables and the final JSON line;
  ``profiling``: py-spy stage breakdown (``--profile``).
"""
