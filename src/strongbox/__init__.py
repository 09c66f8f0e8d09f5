"""Strongbox: self-hosted backup and recovery for application data."""

__version__ = "0.1.0"
