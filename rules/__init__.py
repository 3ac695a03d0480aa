"""The default rule pack: YAML rule files the engine loads when no rule set is published.

Installed as ``stream_risk.rules`` (package data); ``stream-risk rules check rules/``
validates it, ``stream-risk rules publish DIR`` replaces it at run time.
"""
