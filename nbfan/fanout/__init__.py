"""The fan-out engine: batching, the in-flight window, ordering, streaming generators."""
