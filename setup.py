"""Build the compiled core.

The Cython extension list and compiler directives live here, in one place.

Environment switches:
  RECEPTOR_NO_EXTENSIONS=1   build nothing; the pure-Python twins are used.
  RECEPTOR_CYTHON_ANNOTATE=1 write Cython's HTML annotation next to each .pyx.
  RECEPTOR_CYTHON_DEBUG=1    keep bounds and wraparound checks, emit line tracing.
"""

import os

from setuptools import Extension, setup

CORE_MODULES = ["_highwayhash_c", "_codec_c", "_routing_c"]
#: Compiled modules outside the core (each falls back to Python the same way).
OTHER_MODULES = ["receptor.workceptor._runner_c"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def extensions() -> list:
    if _flag("RECEPTOR_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    debug = _flag("RECEPTOR_CYTHON_DEBUG")
    directives = {
        "language_level": "3",
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": True,
        "initializedcheck": debug,
        "embedsignature": True,
        "linetrace": debug,
    }
    macros = [("CYTHON_TRACE", "1")] if debug else []
    exts = [
        Extension(
            f"receptor._core.{name}",
            [f"receptor/_core/{name}.pyx"],
            define_macros=macros,
            extra_compile_args=["-O2"],
        )
        for name in CORE_MODULES
    ]
    exts += [
        Extension(
            name,
            [name.replace(".", "/") + ".pyx"],
            define_macros=macros,
            extra_compile_args=["-O2"],
        )
        for name in OTHER_MODULES
    ]
    return cythonize(
        exts,
        compiler_directives=directives,
        annotate=_flag("RECEPTOR_CYTHON_ANNOTATE"),
    )


setup(ext_modules=extensions())
