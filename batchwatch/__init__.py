"""batchwatch: tracks Mistral batch jobs and keeps every status change they go through."""

__version__ = "0.1.0"
