"""Mistral: the job and create shapes (``wire``, ``schemas``), HTTP with one retry policy
(``http``, ``retry``) and the batch and files operations (``client``)."""
