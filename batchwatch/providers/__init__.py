"""The batch APIs batchwatch tracks: each provider package is the only code that knows its
JSON and speaks HTTP to it."""
