"""Demo data to back up: a file tree and an application database shaped like seed 000."""
