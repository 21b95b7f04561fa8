"""Honouring ``X-Robots-Tag`` opt-out directives (``noai``, ``noimageai``, ``noml``, ...)."""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
# ``noml`` (no machine learning) says what ``noai`` says: it applies wherever ``noai`` does. An alias
# rather than a new default, so that the recorded default (raw/_options.json) stays the same.
ALIASES = {"noml": "noai"}
# Directives that carry a value after a colon; not to be mistaken for a user-agent prefix.
_VALUED_DIRECTIVES = ("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview")


def is_opted_out(
    header_values: Iterable[str], user_agent_token: str, disallowed: Iterable[str]
) -> str | None:
    """Return the directive that forbids use, or None.

    Each header value is a comma-separated directive list, optionally prefixed by a user agent
    (``otherbot: noindex``); a prefixed list applies only when it names our token or ``*``.
    """
    banned = {d.strip().lower() for d in disallowed if d.strip()}
    if not banned:
        return None
    token = user_agent_token.strip().lower()
    for value in header_values:
        text = value.strip()
        agent, sep, rest = text.partition(":")
        agent_name = agent.strip().lower()
        if (
            sep
            and agent_name
            and " " not in agent_name
            and "," not in agent_name
            and (agent_name not in _VALUED_DIRECTIVES)
        ):
            if agent_name not in (token, "*"):
                continue
            text = rest
        for directive in text.split(","):
            name = directive.strip().lower()
            if name in banned or ALIASES.get(name) in banned:
                return name
    return None
