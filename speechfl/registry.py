"""Registries: choose components by name from hparams, fail loudly otherwise.

Every pluggable family (compressors, aggregators, pre-aggregators, attacks,
attackers, server optimizers) is a :class:`Registry`. Registering a name twice,
asking for an unknown name, or passing a parameter the component does not take
is an error that lists what is valid. There is no silent fallback.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, Mapping, Optional


class RegistryError(ValueError):
    """Unknown name, unknown parameter, or duplicate registration."""


class Registry:
    """A name -> factory table for one family of components.

    Parameters
    ----------
    family : str
        Human-readable family name used in error messages ("compressor").
    """

    def __init__(self, family: str):
        self.family = family
        self._entries: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``factory`` (a class or function) under ``name``."""

        def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise RegistryError(f"{self.family} {name!r} is already registered")
            self._entries[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def factory(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise RegistryError(
                f"unknown {self.family} {name!r}; valid {self.family}s: {', '.join(self.names())}"
            )
        return self._entries[name]

    def parameters(self, name: str) -> list[str]:
        """Keyword parameters the factory accepts (excluding ``self``)."""
        sig = inspect.signature(self.factory(name))
        return [
            p.name
            for p in sig.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]

    def build(self, name: str, **params: Any) -> Any:
        """Instantiate ``name`` with ``params``; unknown parameters raise."""
        factory = self.factory(name)
        sig = inspect.signature(factory)
        accepts_var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        if not accepts_var_kw:
            valid = self.parameters(name)
            unknown = [k for k in params if k not in valid]
            if unknown:
                raise RegistryError(
                    f"unknown parameter(s) {', '.join(map(repr, unknown))} for {self.family} "
                    f"{name!r}; valid parameters: {', '.join(valid) or '(none)'}"
                )
        try:
            sig.bind(**params)
        except TypeError as exc:
            raise RegistryError(f"bad parameters for {self.family} {name!r}: {exc}") from exc
        return factory(**params)


def build_from_spec(registry: Registry, spec: Any) -> Any:
    """Build from an hparams spec: a name, or a mapping ``{name: ..., **params}``.

    ``None`` returns ``None`` (the component is off).
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        return registry.build(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        if "name" not in spec:
            raise RegistryError(f"{registry.family} spec {spec!r} has no 'name' key")
        name = spec.pop("name")
        return registry.build(name, **spec)
    raise RegistryError(f"{registry.family} spec must be a name or a mapping, got {type(spec).__name__}")


def optional_section(parent: Mapping, key: str, allowed: Iterable[str], where: str) -> Optional[Mapping]:
    """``parent[key]`` checked to be a mapping with only ``allowed`` keys; ``None`` when absent or null.

    ``where`` names the section in errors (e.g. ``"adversary.spread_out"``).
    """
    section = parent.get(key)
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} must be a mapping {sorted(set(allowed))}, got {section!r}")
    require_keys(section, allowed, where)
    return section


def require_keys(mapping: dict, allowed: Iterable[str], where: str) -> None:
    """Raise if ``mapping`` has keys outside ``allowed`` (no silent typos in config)."""
    allowed = set(allowed)
    bad = sorted(set(mapping) - allowed)
    if bad:
        raise RegistryError(f"unknown key(s) {bad} in {where}; valid keys: {sorted(allowed)}")
