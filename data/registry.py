"""Named plugins with keyword parameters: one registry type, and one validator, for the
curation filters (``pipeline.curate.filters.FILTERS``) and the reward terms
(``rewards.terms.TERMS``). A plugin is a function whose leading ``inputs`` parameters the
caller supplies (the records and context, the scored batch) and whose other parameters,
each with a default, come from the config; ``check`` names what is wrong with a config
entry before any work starts."""

from __future__ import annotations

import inspect
from collections.abc import Callable


class Registry(dict):
    """``{name: function}`` of one kind of plugin, filled by :meth:`register`."""

    def __init__(self, kind: str, inputs: int):
        super().__init__()
        self.kind = kind  # "filter", "reward term": how errors name an entry
        self.inputs = inputs  # leading parameters the caller passes, never set by a config

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator: ``@REGISTRY.register("name")``. A second, different function under a
        registered name is an error (re-registering the same one, as a re-import does, is not)."""

        def deco(fn: Callable) -> Callable:
            if name in self and self[name] is not fn:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = fn
            return fn

        return deco

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The configurable parameters of ``name`` (the ones after its inputs)."""
        return dict(list(inspect.signature(self[name]).parameters.items())[self.inputs :])

    def check(self, name: str, params: dict) -> dict[str, inspect.Parameter]:
        """Raise ``ValueError`` naming an unknown plugin or unknown parameters; returns the
        plugin's parameters (for value checks the caller adds)."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {', '.join(sorted(self))}")
        if not isinstance(params, dict):
            raise ValueError(f"parameters of {name} must be a mapping, got {params!r}")
        accepted = self.parameters(name)
        bad = sorted(set(params) - set(accepted))
        if bad:
            raise ValueError(f"{name} has no parameter(s) {bad}; it takes {list(accepted)}")
        return accepted
