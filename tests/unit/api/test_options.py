"""Options are validated when the decorator runs, with errors that say how to fix them."""

from __future__ import annotations

import pytest

import nbfan
from nbfan.exception import InvalidError

app = nbfan.App("test-options")


def f(x):
    return x


@pytest.mark.parametrize(
    "options, message",
    [
        ({"concurrency_limit": 0}, "concurrency_limit=0: give a whole number >= 1"),
        ({"concurrency_limit": 2.5}, "concurrency_limit=2.5"),
        ({"max_containers": -1}, "max_containers=-1"),
        ({"concurrency_limit": 2, "max_containers": 3}, "disagree"),
        ({"retries": -1}, "retries=-1"),
        ({"retries": "3"}, "retries='3'"),
        ({"timeout": 0}, "timeout=0: give seconds"),
        ({"timeout": "10"}, "timeout='10'"),
        ({"gpu": "A100:0"}, "at least 1"),
        ({"gpu": "A100:x"}, "whole number"),
        ({"gpu": -1}, "at least 1"),
        ({"gpu": 0}, "at least 1"),
        ({"gpu": 1.5}, "expected a bool, int or str"),
        ({"gpu": []}, "list of fallbacks is empty"),
        ({"cpu": 0}, "cpu=0"),
        ({"cpu": "two"}, "cpu='two'"),
        ({"memory": "lots"}, "not a size"),
        ({"memory": 0}, "at least 1 MiB"),
        ({"secrets": "API_KEY"}, "give a list"),
        ({"volumes": ["/data"]}, "dict of mount path"),
        ({"volumes": {"data": object()}}, "absolute"),
        ({"gpus": 1}, "unknown option(s) gpus"),
    ],
)
def test_bad_options_raise_invalid_error_at_decoration(options, message):
    with pytest.raises(InvalidError) as info:
        app.function(**options)(f)
    assert message in str(info.value)


def test_retries_object_validates_its_fields():
    with pytest.raises(InvalidError, match="max_retries"):
        nbfan.Retries(-1)
    with pytest.raises(InvalidError, match="backoff_coefficient"):
        nbfan.Retries(2, backoff_coefficient=0.5)
    r = nbfan.Retries(5, backoff_coefficient=2.0, initial_delay=1.0, max_delay=5.0)
    assert [r.delay(i) for i in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_good_options_parse():
    fn = app.function(gpu=["H100", "a100:2"], cpu=2, memory="4GiB", max_containers=3, retries=2, timeout=60)(f)
    opts = fn.options
    assert [str(g) for g in opts.gpu] == ["H100:1", "A100:2"]
    assert opts.cpu == 2.0 and opts.memory == 4096
    assert opts.concurrency_limit == 3
    assert opts.retries == nbfan.Retries(2)
    assert opts.timeout == 60.0
    assert app.function(gpu=True)(f).options.gpu[0].model is None
    assert app.function(gpu="any:2")(f).options.gpu[0].count == 2


def test_modal_only_options_are_accepted():
    assert app.function(cloud="aws", region="us-east", enable_memory_snapshot=True)(f).name == "f"


def test_scaling_knobs_are_parsed_with_modals_older_names():
    scaling = app.function(min_containers=1, buffer_containers=2, scaledown_window=30)(f).options.scaling
    assert (scaling.min_containers, scaling.buffer_containers, scaling.scaledown_window) == (1, 2, 30.0)
    older = app.function(keep_warm=3, container_idle_timeout=5)(f).options.scaling
    assert (older.min_containers, older.scaledown_window) == (3, 5.0)
    assert app.function()(f).options.scaling == nbfan.api.options.Scaling()


@pytest.mark.parametrize(("options", "why"), [
    ({"min_containers": -1}, r"invalid min_containers=-1: give a whole number >= 0"),
    ({"buffer_containers": 1.5}, r"invalid buffer_containers=1.5: give a whole number"),
    ({"min_containers": True}, r"invalid min_containers=True"),
    ({"scaledown_window": 0}, r"invalid scaledown_window=0: give seconds"),
    ({"min_containers": 1, "keep_warm": 2}, r"keep_warm is the old name of min_containers, give one"),
    ({"min_containers": 4, "max_containers": 2}, r"min_containers=4 is above max_containers=2"),
])
def test_bad_scaling_knobs_fail_at_decoration(options, why):
    with pytest.raises(nbfan.exception.InvalidError, match=why):
        app.function(**options)


def test_update_autoscaler_checks_its_knobs_before_anything_is_sent():
    fn = app.function(max_containers=2)(f)
    for bad, why in (({"min_containers": 3}, "above max_containers=2"), ({"max_containers": 0}, "whole number >= 1"),
                     ({"scaledown_window": -1}, "scaledown_window")):
        with pytest.raises(nbfan.exception.InvalidError, match=why):
            fn.update_autoscaler(**bad)
    assert fn.options.scaling == nbfan.api.options.Scaling()


def test_decorator_forms_and_stub_alias():
    assert nbfan.Stub is nbfan.App
    stub = nbfan.Stub("old")

    @stub.function
    def a(x):
        return x

    @stub.function()
    def b(x):
        return x

    assert isinstance(a, nbfan.Function) and isinstance(b, nbfan.Function)
    assert set(stub.registered_functions) == {"a", "b"}


def test_generator_detection():
    @app.function
    def gen(n):
        yield from range(n)

    assert gen.is_generator
    with pytest.raises(InvalidError, match="generator functions"):
        app.generator(f)


def test_app_defaults_apply_and_function_options_win():
    defaults = nbfan.App("d", secrets=[], volumes={})
    fn = defaults.function(timeout=5)(f)
    assert fn.options.timeout == 5
    with pytest.raises(InvalidError, match="App name"):
        nbfan.App("")


def test_with_options_validates_and_copies():
    fn = app.function(timeout=5)(f)
    other = fn.with_options(timeout=10, max_containers=2)
    assert (fn.options.timeout, other.options.timeout, other.options.concurrency_limit) == (5, 10, 2)
    with pytest.raises(InvalidError):
        fn.with_options(timeout=-3)
