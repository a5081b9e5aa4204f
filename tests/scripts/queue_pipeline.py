"""Producer/consumer with a Queue and a Dict, in the style of Modal's Queue and Dict guides."""

import queue

import nbfan as modal

app = modal.App("queue-pipeline")


@app.function()
def produce(jobs: modal.Queue, start: int, count: int) -> int:
    jobs.put_many(list(range(start, start + count)))
    return count


@app.function()
def consume(jobs: modal.Queue, results: modal.Dict) -> int:
    taken = 0
    while True:
        try:
            item = jobs.get(timeout=1.0)
        except queue.Empty:
            return taken
        results.put(item, item * item, skip_if_exists=True)
        taken += 1


@app.local_entrypoint()
def main(producers: int = 4, per_producer: int = 25):
    with modal.Queue.ephemeral() as jobs, modal.Dict.ephemeral() as results:
        produced = sum(produce.starmap([(jobs, i * per_producer, per_producer) for i in range(producers)]))
        taken = sum(consume.map([jobs] * 3, [results] * 3))
        squares = dict(results.items())
        print("PRODUCED", produced, "TAKEN", taken, "DISTINCT", len(squares))
        print("CORRECT", squares == {i: i * i for i in range(produced)})
