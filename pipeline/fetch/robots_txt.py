"""robots.txt as RFC 9309 defines it, for our product token ``corpusforge``.

Why not :mod:`urllib.robotparser`: it picks a group by *substring* (a group for ``corpus`` or
``forge`` would apply to ``corpusforge``), uses the first group that matches instead of merging
every group for the token, applies the first rule in file order instead of the longest match,
knows neither ``*`` nor ``$`` in paths (``Disallow: /*.jpg$``, common on image hosts, is read as
a literal prefix and never matches), and treats 401/403 as "disallow all" where RFC 9309 says a
4xx means "no restrictions". This parser follows RFC 9309:

- groups start with one or more ``user-agent`` lines; every group whose product token equals
  ``corpusforge`` (case-insensitive, ``corpusforge/1.0`` counts) is merged; without one, every
  ``*`` group is merged; without either, nothing is disallowed;
- ``allow``/``disallow`` rules match the URL's path and query from its start; ``*`` matches any
  characters, a final ``$`` anchors the end; the longest pattern wins, and ``allow`` wins a tie;
- percent-encoding is compared in one normal form (upper-case hex digits, unreserved characters
  decoded, non-ASCII encoded as UTF-8) on both sides; ``*`` and ``$`` in a URL match only
  ``%2A``/``%24`` in a pattern;
- the first :data:`PARSE_LIMIT` bytes are parsed (RFC 9309 asks for at least 500 KiB).

The same path patterns serve ``/.well-known/tdmrep.json`` locations (:mod:`pipeline.fetch.tdmrep`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

PRODUCT_TOKEN = "corpusforge"
PARSE_LIMIT = 512 * 1024  # bytes of a robots.txt that are parsed (RFC 9309 2.5: at least 500 KiB)
# What parse_target keeps unencoded in a request target, plus the pattern specials "*" and "$".
_SAFE = "/?#[]@!$&'()*+,;=:-._~%"
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_TOKEN = re.compile(r"[A-Za-z_-]+")


def _normal_percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def normalise_path(path: str) -> str:
    """``path`` (path and query, as sent on the request line) in the form patterns are compared in."""
    if "%" in path:
        path = _PERCENT.sub(_normal_percent, path)
    if "*" in path or "$" in path:
        # A literal * or $ in a URL is matched by %2A or %24 in a pattern, never by the specials.
        path = path.replace("*", "%2A").replace("$", "%24")
    return path


@dataclass(frozen=True)
class PathPattern:
    """A robots.txt path pattern: a plain prefix, or a regular expression when it has ``*`` or ``$``."""

    text: str  # normalised, as compared (shown in messages)
    prefix: str | None
    regex: re.Pattern[str] | None

    @property
    def length(self) -> int:
        """Specificity: the pattern's length in octets (RFC 9309 2.2.2, "the most octets")."""
        return len(self.text)

    def matches(self, path: str) -> bool:
        """Whether the normalised ``path`` matches (from its start)."""
        if self.prefix is not None:
            return path.startswith(self.prefix)
        return self.regex is not None and self.regex.match(path) is not None


def compile_pattern(raw: str) -> PathPattern:
    """The pattern ``raw`` (a robots.txt rule value or a TDMRep location)."""
    text = quote(raw.strip(), safe=_SAFE)
    if "%" in text:
        text = _PERCENT.sub(_normal_percent, text)
    text = re.sub(r"\*+", "*", text)
    anchored = text.endswith("$")
    body = text[:-1] if anchored else text
    if "*" not in body and not anchored:
        return PathPattern(text, text, None)
    pieces = [".*" if piece == "*" else re.escape(piece) for piece in re.split(r"(\*)", body) if piece]
    return PathPattern(text, None, re.compile("".join(pieces) + (r"\Z" if anchored else ""), re.DOTALL))


@dataclass(frozen=True)
class Rule:
    """One ``allow`` or ``disallow`` line of the group that applies to us."""

    allow: bool
    pattern: PathPattern

    def __str__(self) -> str:
        return f"{'Allow' if self.allow else 'Disallow'}: {self.pattern.text}"


class RobotsRules:
    """The rules of the group(s) that apply to our token, most specific first."""

    __slots__ = ("_any_disallow", "group", "rules")

    def __init__(self, rules: tuple[Rule, ...] = (), group: str = "none") -> None:
        """``group``: which group applied, PRODUCT_TOKEN, ``*`` or ``none`` (for messages)."""
        self.rules = tuple(sorted(rules, key=lambda r: (-r.pattern.length, not r.allow)))
        self.group = group
        self._any_disallow = any(not r.allow for r in self.rules)

    def disallowing_rule(self, path: str) -> Rule | None:
        """The rule that forbids ``path`` (path and query as sent), or None when it is allowed."""
        if not self._any_disallow:
            return None
        normal = normalise_path(path)
        for rule in self.rules:
            if rule.pattern.matches(normal):
                return None if rule.allow else rule
        return None


ALLOW_ALL = RobotsRules()


def parse_robots(body: bytes | str, token: str = PRODUCT_TOKEN) -> RobotsRules:
    """The rules ``body`` (a robots.txt) sets for the product token ``token``."""
    if isinstance(body, bytes):
        if len(body) > PARSE_LIMIT:
            cut = body[:PARSE_LIMIT]
            body = cut[: cut.rfind(b"\n") + 1] or cut  # a line cut in two is dropped
        text = body.decode("utf-8", "replace")
    else:
        text = body
    text = text.removeprefix("\ufeff")
    token = token.lower()
    mine: list[Rule] = []
    anyone: list[Rule] = []
    found_mine = found_anyone = False
    agents: list[str] = []  # user agents of the group being read
    in_rules = False  # a rule line has been seen since the group's last user-agent line
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        key, colon, value = line.partition(":")
        if not colon:
            continue
        key = key.strip().lower()
        value = value.strip()
        if key in ("user-agent", "useragent"):
            if in_rules:
                agents, in_rules = [], False
            agents.append(_agent(value))
            found_mine = found_mine or token in agents
            found_anyone = found_anyone or "*" in agents
        elif key in ("allow", "disallow") and agents:
            in_rules = True
            if not value:
                continue  # "Disallow:" with nothing: no rule (everything stays allowed)
            rule = Rule(key == "allow", compile_pattern(value))
            if token in agents:
                mine.append(rule)
            if "*" in agents:
                anyone.append(rule)
    if found_mine:
        return RobotsRules(tuple(mine), token)
    if found_anyone:
        return RobotsRules(tuple(anyone), "*")
    return ALLOW_ALL


def _agent(value: str) -> str:
    """The product token of a ``user-agent`` value, lower-cased (``*`` stays ``*``)."""
    if value.startswith("*"):
        return "*"
    match = _TOKEN.match(value)
    return match.group(0).lower() if match else ""
