"""Persistent state: one Protocol per aggregate (``base``), two backends (``sqlite``, ``dynamodb``)."""
