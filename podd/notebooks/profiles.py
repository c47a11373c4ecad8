"""Which profile a notebook runs under: ``smoke`` (CI, offline, seconds), ``quick`` (the real
dataset, scaled down) or ``paper`` (the authors' settings). The list itself is
:data:`podd.presets.PROFILES`; here only how a notebook picks one."""

from __future__ import annotations

import os

from podd.presets import PROFILES

PROFILE_ENV = "PODD_PROFILE"


def resolve_profile(profile: str | None = None) -> str:
    """``profile`` if given, else ``$PODD_PROFILE``, else ``"paper"``; checked."""
    profile = profile or os.environ.get(PROFILE_ENV) or "paper"
    if profile not in PROFILES:
        raise ValueError(
            f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} "
            f"(set it with -p profile NAME or the {PROFILE_ENV} variable)"
        )
    return profile


def profile_default(profile: str, smoke, quick, paper):
    """Pick a per-profile default (e.g. how many random orderings an ablation runs)."""
    return {"smoke": smoke, "quick": quick, "paper": paper}[resolve_profile(profile)]
