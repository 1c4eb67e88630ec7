"""Every example in a `reference` docstring runs and prints what it shows.

The reference reads like a textbook, and its examples are part of the text: a module that moves or
an import that goes must not leave an example that no longer runs. Each module's examples run on
their own (doctest gives each module a fresh namespace), so an example imports what it uses.
"""

import doctest
import importlib
import pkgutil

import pytest

import reference

MODULES = sorted(info.name for info in pkgutil.iter_modules(reference.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(f"reference.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_the_textbook_has_examples():
    """A test that cannot fail is no test: the modules that teach by example keep their examples."""
    taught = ("autograd", "neuron", "nested", "rng", "losses", "masking", "init", "bpe", "layers")
    counts = {
        name: doctest.testmod(importlib.import_module(f"reference.{name}")).attempted
        for name in taught
    }
    assert all(counts.values()), counts
