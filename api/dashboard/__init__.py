"""The live dashboard, served by the API: pages under /dashboard/, live charts over SSE from the
MQTT stream, and report exports (JSON, CSV, JUnit XML) under /v1/sessions/{id}/."""

from api.dashboard.routes import router

__all__ = ["router"]
