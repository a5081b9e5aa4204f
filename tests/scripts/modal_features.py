"""A Modal script using much of the compute API, run unchanged through `import nbfan as modal`:
images, secrets, retries, schedules, @concurrent, @batched, FunctionCall.gather,
with_options, exceptions, an async entrypoint with typed options."""

import datetime
import os

import nbfan as modal

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("git")
    .pip_install("cloudpickle")  # installed on the workers: the check passes
    .uv_pip_install("dask")
    .run_commands("echo built")
    .env({"MODEL_NAME": "tiny"})
)
app = modal.App("modal-features", image=image)


@app.function(secrets=[modal.Secret.from_dict({"API_TOKEN": "s3cret"}), modal.Secret.from_name("test-creds")])
def read_env() -> tuple:
    return os.environ["MODEL_NAME"], os.environ["API_TOKEN"], os.environ["DB_PASSWORD"]


attempts = modal.Dict.from_name("modal-features-attempts", create_if_missing=True)


@app.function(retries=modal.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0))
def flaky(key: str) -> int:
    n = attempts.get(key, 0) + 1
    attempts[key] = n
    if n < 3:
        raise RuntimeError(f"attempt {n} fails")
    return n


@app.function(schedule=modal.Period(hours=1))
def nightly() -> str:
    return "scheduled"


@app.function(cpu=1, memory=128)
@modal.concurrent(max_inputs=4)
def call_id() -> str:
    return modal.current_function_call_id()


@app.function()
@modal.batched(max_batch_size=8, wait_ms=10)
def embed(xs: list[int]) -> list[int]:
    return [x * 10 for x in xs]


@app.function(timeout=1)
def too_slow() -> None:
    import time

    for _ in range(100):
        time.sleep(0.05)


@app.local_entrypoint()
async def main(n: int, scale: float = 1.0, when: datetime.datetime = datetime.datetime(2024, 1, 1), loud: bool = False):
    print("ENV", read_env.remote())
    print("RETRIES", flaky.remote(f"k-{os.getpid()}"))
    print("SCHEDULED", nightly.remote())
    call = call_id.spawn()
    print("CALL_ID_MATCHES", call.get() == call.object_id)
    print("BATCHED", embed.remote(4), list(embed.map(range(n))))
    calls = [embed.spawn(i) for i in range(3)]
    print("GATHER", modal.FunctionCall.gather(*calls))
    print("AIO", await embed.remote.aio(5))
    try:
        too_slow.remote()
    except modal.exception.FunctionTimeoutError:
        print("TIMEOUT caught")
    try:
        too_slow.with_options(timeout=30).spawn().get(timeout=0.1)
    except TimeoutError:
        print("STILL RUNNING")
    print("OPTIONS", n, scale, when.isoformat(), loud)
