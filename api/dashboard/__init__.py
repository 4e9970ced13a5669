"""The live dashboard, served by the API: pages under /dashboard/ and live charts over SSE from
the MQTT stream. (Its report exports are API routes: api/routes/exports.py.)"""

from api.dashboard.routes import router

__all__ = ["router"]
