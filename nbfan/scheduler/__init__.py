"""What runs on the Dask scheduler: nbfan's scheduler plugins (telemetry, caps, the spawn_map
store, Dicts/Queues/deployments) and the snapshot schema every view reads."""
