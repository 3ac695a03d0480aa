"""Tools around the engine, not part of the runtime: the traffic simulator, the local
demo, throughput and latency benchmarks, per-stage costs and the UCI data converter."""
