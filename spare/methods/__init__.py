"""Unlearning methods by name: the built-in ones (listed here, in the tables' order) and any a
user registers from a file of their own.

A method is a config dataclass plus ``unlearn(pipe, data, cfg) -> (edit, report)``, registered
with :func:`spare.methods.registry.register_method`. The CLI, the runner and the tables read
:func:`method_names` and :func:`get_method`, never a hand-kept list.

Adding a method: write one file that registers it, then either add its module to
``BUILTIN_METHODS`` (a built-in) or load it with ``spare --plugin FILE`` / ``SPARE_PLUGINS=FILE``
(nothing in the package touched).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from spare.errors import UserError
from spare.methods.registry import MethodSpec, lookup, register_method, registered  # noqa: F401  (the API)

# name -> module; SPARE first, then the baselines: the registry's and the tables' order
BUILTIN_METHODS: dict[str, str] = {
    "spare": "spare.methods.spare_method",
    "ca": "spare.baselines.ca",
    "ediff": "spare.baselines.ediff",
    "esd": "spare.baselines.esd",
    "salun": "spare.baselines.salun",
    "fmn": "spare.baselines.fmn",
    "shs": "spare.baselines.shs",
    "spm": "spare.baselines.spm",
    "uce": "spare.baselines.uce",
    "seot": "spare.baselines.seot",
}
PLUGINS_ENV = "SPARE_PLUGINS"  # files of user methods, separated by os.pathsep


def _load_builtin() -> None:
    for module in BUILTIN_METHODS.values():
        importlib.import_module(module)  # each module registers its method
    for path in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
        load_plugin(path)


def load_plugin(path: str | Path) -> None:
    """Import a user's method file (it registers its method); loading one file twice is a no-op."""
    path = Path(path).resolve()
    name = "spare_plugin_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return
    if not path.is_file():
        raise UserError(f"method plugin {str(path)!r} does not exist (from --plugin or ${PLUGINS_ENV})")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def method_names() -> tuple[str, ...]:
    _load_builtin()
    return registered(tuple(BUILTIN_METHODS))


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name lists the valid ones."""
    _load_builtin()
    return lookup(name, tuple(BUILTIN_METHODS))
