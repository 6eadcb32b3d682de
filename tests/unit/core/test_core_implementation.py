"""Which implementation is in use, and that the dispatchers re-export it."""

import importlib
import os
import subprocess
import sys

import pytest

import receptor._core
from receptor._core import NO_EXTENSIONS

from .twins import TWINS, load_twin

MODULES = ("highwayhash", "codec", "routing")


def test_implementation_matches_build() -> None:
    # CI installs the package compiled: "cython" is only allowed to be missing on purpose.
    expected = "python" if NO_EXTENSIONS else "cython"
    assert expected == receptor._core.IMPLEMENTATION


@pytest.mark.parametrize("module", MODULES)
def test_dispatcher_reexports_selected_twin(module: str) -> None:
    dispatcher = importlib.import_module(f"receptor._core.{module}")
    selected = load_twin(module, receptor._core.IMPLEMENTATION)
    assert sorted(dispatcher.__all__) == sorted(selected.__all__)
    for name in dispatcher.__all__:
        assert getattr(dispatcher, name) is getattr(selected, name), name


@pytest.mark.parametrize("module", MODULES)
def test_twins_have_the_same_api(module: str) -> None:
    reference = load_twin(module, "python")
    for twin in TWINS:
        twin_module = load_twin(module, twin)
        assert sorted(twin_module.__all__) == sorted(reference.__all__)
        for name in reference.__all__:
            value = getattr(twin_module, name)
            if not callable(value):
                assert value == getattr(reference, name), name
            else:
                assert value.__doc__, f"{module}.{name} has no docstring"


def test_environment_variable_selects_pure_python() -> None:
    code = (
        "import receptor._core as core, receptor._core.codec as codec;"
        "print(core.NO_EXTENSIONS, core.IMPLEMENTATION, codec.encode_data.__module__)"
    )
    env = dict(os.environ, RECEPTOR_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "python", "receptor._core._codec_py"]
