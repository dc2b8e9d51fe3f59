"""HTTP API (FastAPI). The only package that imports FastAPI; build an app with ``create_app``."""

from .app import create_app

__all__ = ["create_app"]
