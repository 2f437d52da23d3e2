"""The ``batchwatch`` command: parser and error funnel, query, action and service commands,
the daemon's standard-library client, and terminal display."""
