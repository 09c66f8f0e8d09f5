"""API v1 routers: thin, each calling one service."""
