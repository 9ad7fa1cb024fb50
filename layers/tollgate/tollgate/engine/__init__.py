"""One request's life, independent of HTTP: routes (deployments, fallbacks), health, attempts."""
