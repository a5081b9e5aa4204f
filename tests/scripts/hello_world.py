# Modal's "Hello, world!" example (examples/01_getting_started/hello_world.py), ported by
# changing only the import: `import nbfan as modal`.
import sys

import nbfan as modal

app = modal.App("example-hello-world")


@app.function()
def f(i):
    if i % 2 == 0:
        print("hello", i)
    else:
        print("world", i, file=sys.stderr)

    return i * i


@app.local_entrypoint()
def main():
    # run the function locally
    print(f.local(1000))

    # run the function remotely on the cluster
    print(f.remote(1000))

    # run the function in parallel and remotely on the cluster
    total = 0
    for ret in f.map(range(200)):
        total += ret

    print(total)
