"""Import paths of nbfan 0.1 that the README documented: `nbfan.telemetry.query` and
`nbfan.telemetry.schema`. The code lives in `nbfan.api.telemetry` and `nbfan.scheduler.schema`."""
