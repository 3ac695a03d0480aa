"""Notifications for the collections team, and consumer-group reading of the warnings stream.

* :mod:`stream_risk.notify.stream`: a reusable consumer-group reader of the
  Redis warnings stream (``XREADGROUP``/``XACK``, re-claiming entries a crashed
  consumer left pending with ``XAUTOCLAIM``);
* :mod:`stream_risk.notify.routes`: the routing file (YAML), parsed apart from
  loading, every error collected with its file, name and line;
* :mod:`stream_risk.notify.decide`: the decisions, pure functions of their
  inputs and ``now``: which channels a warning goes to, whether it is a
  duplicate, an escalation or a resolution, whether a rate limit holds, how
  long to back off;
* :mod:`stream_risk.notify.channels`: webhook (signed JSON), SMTP and apprise
  senders;
* :mod:`stream_risk.notify.ledger`: the Redis records that keep a redelivered
  warning from notifying twice, and the per-customer rate counters;
* :mod:`stream_risk.notify.service`: the notifier that ties them together,
  with a Kafka dead-letter topic for notifications that finally fail;
* :mod:`stream_risk.notify.cli`: ``stream-risk notify run|check``.
"""
