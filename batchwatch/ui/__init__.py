"""The dashboard: server-rendered pages (Jinja2 templates) of the history in the store, kept
live by htmx polling; a login with the API token gives a session cookie. ``install`` mounts
it on the API's app (see ``routes.py``)."""
