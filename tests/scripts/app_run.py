"""Run with plain `python app_run.py`: Modal's `with modal.enable_output(): with app.run():` style."""

import nbfan as modal

app = modal.App("app-run-style")


@app.function()
def cube(x: int) -> int:
    return x**3


@app.function()
def forever() -> None:
    import time

    while True:
        time.sleep(0.05)


if __name__ == "__main__":
    with modal.enable_output():
        with app.run():
            print("SUM", sum(cube.map(range(10))))
            pending = forever.spawn()
            print("PENDING", pending.object_id, flush=True)
    # leaving app.run() cancelled the spawned call
    try:
        pending.get(timeout=30)
    except modal.exception.InputCancellation:
        print("CANCELLED")
