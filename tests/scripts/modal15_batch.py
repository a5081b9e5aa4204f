"""A batch pipeline written the way Modal's docs show Modal 1.5's features, with only the import
changed: a spawned map's handle (num_inputs, get(index=), iter(start=, end=)), input concurrency,
a read-only volume mounted from a sub-path, a class whose @exit runs, the call graph, gather."""

import asyncio
import os

import nbfan as modal

app = modal.App("modal15-batch")
vol = modal.Volume.from_name("modal15-batch-data", create_if_missing=True)
MOUNT = os.environ.get("TEST_MOUNT", "/tmp/nbfan-example/config")


@app.function()
@modal.concurrent(max_inputs=8)
async def fetch(i: int) -> int:
    await asyncio.sleep(0.05)  # an HTTP request, say
    return i * i


@app.function(volumes={MOUNT: vol.read_only().with_mount_options(sub_path="/config")})
def read_setting(name: str) -> str:
    with open(os.path.join(MOUNT, name)) as fh:
        return fh.read().strip()


@app.function()
def fan_out(n: int) -> int:
    return sum(fetch.map(range(n)))


@app.cls(scaledown_window=2)
class Scorer:
    @modal.enter()
    def load(self) -> None:
        self.weight = 3

    @modal.method()
    def score(self, x: int) -> int:
        return self.weight * x

    @modal.exit()
    def unload(self) -> None:
        self.weight = 0


@app.local_entrypoint()
def main() -> None:
    (vol.path / "config").mkdir(exist_ok=True)
    (vol.path / "config" / "mode").write_text("fast\n")
    print("SETTING", read_setting.remote("mode"))
    try:
        vol.read_only().remove_file("config/mode")
    except modal.exception.InvalidError:
        print("READ ONLY refused")

    job = fetch.spawn_map(range(20))
    print("INPUTS", job.num_inputs())
    print("THIRD", job.get(index=3))
    print("SLICE", list(job.iter(start=5, end=8)))
    print("ALL", sum(job.get()))

    call = fan_out.spawn(10)
    print("GATHER", modal.FunctionCall.gather(call, fetch.spawn_map(range(3))))
    (graph,) = call.get_call_graph()
    print("GRAPH", graph.function_name, [child.function_name for child in graph.children])
    print("SCORES", list(Scorer().score.map([1, 2, 3])))
