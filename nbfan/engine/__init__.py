"""The map engine: planning a call's tasks, batching, the in-flight window and reorder buffer,
streams, the watchdog. Runs in the caller and in a spawn_map's coordinator task."""
