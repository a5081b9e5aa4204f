"""A batch job in the style of Modal's "run a job detached" guide: the entrypoint spawns slow
work that writes its results to a Volume, then returns at once."""

import os
import time

import nbfan as modal

app = modal.App("detached-job")
vol = modal.Volume.from_name("detach-results", create_if_missing=True)
MOUNT = os.environ.get("TEST_MOUNT", "/tmp/nbfan-example/results")  # where the function sees the volume


@app.function(volumes={MOUNT: vol})
def slow_write(name: str, seconds: float) -> str:
    time.sleep(seconds)
    with open(f"{MOUNT}/{name}", "w") as fh:
        fh.write("finished")
    return name


@app.local_entrypoint()
def main(tag: str, seconds: float = 3.0, maps: int = 0):
    call = slow_write.spawn(tag, seconds)
    print("CALL", call.object_id, flush=True)
    if maps:
        job = slow_write.spawn_map([f"{tag}-map-{i}" for i in range(maps)], [seconds] * maps)
        print("MAP", job.object_id, flush=True)
