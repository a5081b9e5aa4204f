"""An app to deploy (`nbfan deploy`), then call by name from other processes."""

import os

import nbfan as modal

app = modal.App("deployed-math")

GREETING = os.environ.get("DEPLOY_GREETING", "v1")


def helper(x: int) -> int:  # a plain module function the deployed one uses: travels with it
    return x * x


@app.function(retries=1)
def square(x: int) -> int:
    return helper(x)


@app.function()
def greeting() -> str:
    return GREETING


@app.cls()
class Scaler:
    factor: int = modal.parameter(default=2)

    @modal.enter()
    def load(self) -> None:
        self.offset = len(GREETING)  # set up once per worker process

    @modal.method()
    def scale(self, x: int) -> int:
        return x * self.factor + self.offset
