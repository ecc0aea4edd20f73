"""The Django app that runs graphs: models for threads and the checkpoint tree, the Django
saver, runs executed by task workers under leases, events and management commands.

Everything that needs Django settings lives here; the engine around it (`orchestration.*`)
imports no Django. The app label stays "orchestration" so tables and migrations keep their
names."""
