"""The ``stream-risk`` command line: one verb per engine task.

:mod:`~stream_risk.cli.command` builds the parser (replay, features and the
module verbs), :mod:`~stream_risk.cli.verbs` the verbs that drive services,
:mod:`~stream_risk.cli.rules` the rule-set verbs, :mod:`~stream_risk.cli.common`
what they share. Settings come from one loader, :func:`stream_risk.config.load_settings`.
"""

from stream_risk.cli.command import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
