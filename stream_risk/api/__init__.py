"""The HTTP API, the metrics endpoint and the live dashboard, served by each worker.

:func:`create_app` builds the aiohttp application; :class:`ApiServer` serves it;
the worker runs it through :class:`stream_risk.api.service.ApiService`.
"""

from stream_risk.api.server import ApiDeps, ApiServer, create_app

__all__ = ["ApiDeps", "ApiServer", "create_app"]
