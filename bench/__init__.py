"""Benchmarks (not tests): the same workloads on Stepwise and LangGraph, run side by side.

Run `python -m bench` from the repository root; see `bench/__main__.py` for the options.
"""
