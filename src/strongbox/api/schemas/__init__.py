"""Request and response schemas of API v1, apart from the catalog models."""
