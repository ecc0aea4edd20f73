"""`python -m bench.load`: the load test of the serving profile (see docs/performance.md)."""
