"""ASGI entry point for uvicorn (``aisoule.asgi:app``)."""

from aisoule.app import create_app

app = create_app()
