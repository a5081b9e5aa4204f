"""What a `%%remote` cell reads, assigns and imports, found before it runs (notebook/cellcode.py)."""

from __future__ import annotations

from nbfan.notebook.cellcode import analyze


def test_reads_assigns_and_imports_of_a_cell() -> None:
    code = analyze(
        "import numpy as np\n"
        "from math import sqrt\n"
        "model = train(data, lr=rate)\n"
        "loss = [sqrt(x) for x in losses]\n"
        "def helper(y):\n"
        "    return y + offset\n"
        "model\n"
    )
    assert code.imports == ["np", "sqrt"]
    assert {"helper", "loss", "model"} <= set(code.assigns) and "np" not in code.assigns  # a module never comes back
    assert code.reads == ["data", "losses", "model", "offset", "rate", "train"]  # not what it imports itself
    assert "x" not in code.reads and "y" not in code.reads  # a comprehension's and a function's own names
    assert code.has_value  # the last line's value is shown


def test_ipython_names_are_not_notebook_data() -> None:
    code = analyze("print(In[1], Out)\nvalue = 1\n")
    assert "In" not in code.reads and "Out" not in code.reads
    assert not code.has_value
