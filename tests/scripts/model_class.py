"""Modal's class pattern (`@app.cls` + `@modal.enter()` + `@modal.method()`), as in its
inference examples: load once per container (here: per worker process), call many times."""

import os

import nbfan as modal

app = modal.App("example-model-class")
image = modal.Image.debian_slim().pip_install("cloudpickle")


@app.cls(image=image, cpu=1, scaledown_window=300)
class Model:
    size: int = modal.parameter(default=2)

    @modal.enter()
    def load(self):
        self.loads = getattr(self, "loads", 0) + 1  # an expensive load would go here
        self.pid = os.getpid()

    @modal.method()
    def predict(self, x: int) -> tuple:
        return x * self.size, self.loads, self.pid

    @modal.exit()
    def shutdown(self):
        pass


@app.local_entrypoint()
def main(size: int = 3):
    model = Model(size=size)
    print("REMOTE", model.predict.remote(5)[0])
    results = list(model.predict.map(range(20)))
    print("MAP", [r[0] for r in results])
    loads = {}
    for _, n, pid in results:
        loads[pid] = max(loads.get(pid, 0), n)
    print("LOADED_ONCE_PER_PROCESS", set(loads.values()) == {1})
    print("DEFAULT", Model().predict.remote(1)[0])
