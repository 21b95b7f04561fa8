"""The W3C TDM Reservation Protocol (TDMRep): ``/.well-known/tdmrep.json`` and the response header.

``tdmrep.json`` is a JSON array of rules ``{"location": PATTERN, "tdm-reservation": 0 or 1,
"tdm-policy": URL}``; a location is a path pattern with robots.txt syntax (``*``, a final ``$``;
:func:`pipeline.fetch.robots_txt.compile_pattern`), matched case-sensitively against the URL's
path, and the first rule in the array that matches decides. A rule with another reservation value
or without a string location is a protocol error and is skipped (the spec: "unset"). A file that
is missing, unreachable or not such an array means the host does not use the protocol.

The ``tdm-reservation`` response header (``1`` reserved, ``0`` not, anything else unset) comes
with an optional ``tdm-policy`` URL, which only goes into the failure message: a policy tells how
to ask for a licence, not that the image may be used.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pipeline.fetch.robots_txt import PathPattern, compile_pattern, normalise_path

log = logging.getLogger(__name__)

WELL_KNOWN_PATH = "/.well-known/tdmrep.json"
MAX_RULES = 10_000
_RESERVED = {1: True, 0: False, "1": True, "0": False}


@dataclass(frozen=True)
class TdmRule:
    """One rule of a ``tdmrep.json``."""

    pattern: PathPattern
    reserved: bool
    policy: str | None


@dataclass(frozen=True)
class TdmRep:
    """The rules of one host's ``tdmrep.json`` in file order (none: the host does not use it)."""

    rules: tuple[TdmRule, ...] = ()

    def reservation(self, path: str) -> TdmRule | None:
        """The rule reserving TDM rights on ``path`` (path and query as sent), or None."""
        if not self.rules:
            return None
        normal = normalise_path(path.split("?", 1)[0])
        for rule in self.rules:
            if rule.pattern.matches(normal):
                return rule if rule.reserved else None
        return None


NO_TDMREP = TdmRep()


def parse_tdmrep(body: bytes, origin: str = "") -> TdmRep:
    """The rules of a ``tdmrep.json`` body; :data:`NO_TDMREP` (and a log line) when it is not one."""
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        log.info("%s%s is not JSON (%s): no TDM reservations read from it", origin, WELL_KNOWN_PATH, exc)
        return NO_TDMREP
    if not isinstance(document, list):
        log.info("%s%s is not a JSON array: no TDM reservations read from it", origin, WELL_KNOWN_PATH)
        return NO_TDMREP
    rules = []
    for entry in document[:MAX_RULES]:
        if not isinstance(entry, dict):
            continue
        location = entry.get("location")
        value = entry.get("tdm-reservation")
        reserved = _RESERVED.get(value) if isinstance(value, int | str) else None  # type: ignore[arg-type]
        if not isinstance(location, str) or not location or reserved is None:
            continue
        policy = entry.get("tdm-policy")
        policy = policy if isinstance(policy, str) else None
        rules.append(TdmRule(compile_pattern(location), reserved, policy))
    return TdmRep(tuple(rules))


def header_reservation(value: str | None) -> bool | None:
    """A ``tdm-reservation`` header value: True reserved, False not, None unset (absent or invalid)."""
    if value is None:
        return None
    return _RESERVED.get(value.strip())
