"""Use cases: plain Python, called the same way by the API, the CLI and a worker."""
