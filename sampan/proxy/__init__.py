"""Service networking on a node: the service proxy (Services + EndpointSlices -> nftables,
like kube-proxy's nftables mode: rules.py, ruleset.py, proxier.py), cluster DNS (dns*.py)
and NetworkPolicy enforcement (netpol*.py)."""
