"""What runs inside a Dask task on a worker: a batch of inputs, generator streams, `%%remote`
cells, their outcomes and tracebacks, and what a task reports to telemetry."""
