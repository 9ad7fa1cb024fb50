"""In-process metrics, provider health and recent-request diagnostics (never prompts, never secrets)."""
