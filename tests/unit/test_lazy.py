"""receptor._lazy.LazyModule: a module imported on first use, then in its name's place."""

import sys

from receptor._lazy import LazyModule


def test_imports_on_first_attribute_and_takes_the_names_place():
    namespace: dict[str, object] = {}
    sys.modules.pop("colorsys", None)
    lazy = LazyModule("colorsys", namespace, "colorsys")
    namespace["colorsys"] = lazy
    assert "colorsys" not in sys.modules
    assert "colorsys" in repr(lazy)
    assert lazy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules
    assert namespace["colorsys"] is sys.modules["colorsys"]


def test_a_missing_module_raises_import_error_at_first_use():
    namespace: dict[str, object] = {}
    lazy = LazyModule("no_such_module_xyz", namespace, "m")
    try:
        lazy.anything  # noqa: B018
    except ImportError:
        pass
    else:
        raise AssertionError("expected ImportError")
