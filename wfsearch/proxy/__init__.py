"""Proxy evaluation: data sources, the proxy trainer, cost and throughput measurement."""
