"""HTTP controllers. The only layer that knows HTTP status codes."""
