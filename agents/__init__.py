"""The Faust topology: app, topics, the state table and the agents.

Importable as ``stream_risk.agents``; :func:`build` wires everything for a
:class:`~stream_risk.config.Settings`.
"""

from stream_risk.agents.app import Topology, build

__all__ = ["Topology", "build"]
