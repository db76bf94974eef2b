"""Which models may be used: the allowed-models policy (pure: what Redis holds of it is `jobstore`'s).

A policy is a list of models to allow and a list to deny, each an id, an alias or a glob pattern (`gpt-6*`,
`claude-*-5-5`), matched against every name of a catalog entry. No allow list (`ALLOWED_MODELS` unset, or a
`reset`) allows every current and deprecated model; a retired model is never allowed. The deny list wins.
Operators change it at run time (`llm-fleet policy`); its `version` counts the changes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from schemas.catalog import ModelInfo

__all__ = ["Policy"]


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True)

    allow: tuple[str, ...] | None = None
    """Patterns of the models allowed (None: every current and deprecated model)."""
    deny: tuple[str, ...] = ()
    version: int = 0
    """0: the starting policy of this process's environment (`ALLOWED_MODELS`); then one more per change."""

    @classmethod
    def from_env(cls, value: str | None) -> Policy:
        """`ALLOWED_MODELS`: comma-separated ids, aliases or glob patterns (unset or empty: every model)."""
        names = tuple(n.strip() for n in (value or "").split(",") if n.strip())
        return cls(allow=names or None)

    def permits(self, info: ModelInfo) -> bool:
        if info.lifecycle.status == "retired" or _matches(self.deny, info):
            return False
        return self.allow is None or _matches(self.allow, info)

    def allowed(self, models: Iterable[ModelInfo]) -> frozenset[str]:
        """The ids of the models this policy permits, of `models` (the catalog's)."""
        return frozenset(m.id for m in models if self.permits(m))

    def describe(self) -> str:
        allow = "every current and deprecated model" if self.allow is None else ", ".join(self.allow) or "nothing"
        deny = f"; denied: {', '.join(self.deny)}" if self.deny else ""
        return f"version {self.version}: allowed: {allow}{deny}"


def _matches(patterns: Iterable[str], info: ModelInfo) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns for name in (info.id, *info.aliases))
