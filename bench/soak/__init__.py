"""Chaos soak (`python -m bench.soak`): review cycles through the real pages while task
workers are SIGKILLed, server processes restarted and PostgreSQL restarted once, on a
throwaway PostgreSQL cluster the soak starts itself. Then it counts: every run finished,
no decision lost, none applied twice, no review open, each payout made once. Any count
other than the expected one fails it.

Modules: `cluster` (the throwaway PostgreSQL), `processes` (servers, workers, sweeper),
`driver` (reviewers and the thread starter, httpx), `chaos` (the kills and restarts),
`django_side` (setup and the final accounting, run as subprocesses on the cluster),
`run` (puts them together).
"""
