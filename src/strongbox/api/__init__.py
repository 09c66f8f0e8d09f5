"""The HTTP interface: REST API v1 (seed 000 contract) and WebSocket job events."""
