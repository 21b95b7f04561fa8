"""robots.txt parsing and matching (RFC 9309), where urllib.robotparser gets it wrong included."""

from __future__ import annotations

import urllib.robotparser

import pytest

from pipeline.fetch.robots_txt import PARSE_LIMIT, compile_pattern, normalise_path, parse_robots


def allowed(robots: str, path: str) -> bool:
    return parse_robots(robots).disallowing_rule(path) is None


@pytest.mark.parametrize(
    ("robots", "path", "expected"),
    [
        # Our group, or else the * group, or else nothing applies.
        ("User-agent: corpusforge\nDisallow: /\n\nUser-agent: *\nAllow: /\n", "/a.jpg", False),
        ("User-agent: CorpusForge/2.1\nDisallow: /img/\n", "/img/a.jpg", False),
        ("User-agent: otherbot\nDisallow: /\n", "/a.jpg", True),
        ("User-agent: *\nDisallow: /private/\n", "/private/a.jpg", False),
        ("User-agent: *\nDisallow: /private/\n", "/public/a.jpg", True),
        # Our own group replaces *, even when it allows more.
        ("User-agent: *\nDisallow: /\n\nUser-agent: corpusforge\nDisallow: /admin\n", "/a.jpg", True),
        # Groups for our token are merged, wherever they are.
        ("User-agent: corpusforge\nDisallow: /a\n\nUser-agent: x\nDisallow: /\n\nUser-agent: corpusforge\n"
         "Disallow: /b\n", "/b/1.jpg", False),  # fmt: skip
        # Several user-agent lines start one group.
        ("User-agent: x\nUser-agent: corpusforge\nDisallow: /\n", "/a.jpg", False),
        # The longest match wins, whatever the order; allow wins a tie.
        ("User-agent: *\nAllow: /img/public/\nDisallow: /img/\n", "/img/public/a.jpg", True),
        ("User-agent: *\nDisallow: /img/\nAllow: /img/public/\n", "/img/public/a.jpg", True),
        ("User-agent: *\nDisallow: /img/public/\nAllow: /img/\n", "/img/public/a.jpg", False),
        ("User-agent: *\nDisallow: /img\nAllow: /img\n", "/img/a.jpg", True),
        # Wildcards and the end anchor.
        ("User-agent: *\nDisallow: /*.png$\n", "/a/b.png", False),
        ("User-agent: *\nDisallow: /*.png$\n", "/a/b.png?w=100", True),
        ("User-agent: *\nDisallow: /*.png$\n", "/a/b.jpg", True),
        ("User-agent: *\nDisallow: /*/thumbs/\n", "/x/y/thumbs/1.jpg", False),
        ("User-agent: *\nDisallow: /*?\n", "/a.jpg?token=1", False),
        ("User-agent: *\nDisallow: /a$\n", "/a", False),
        ("User-agent: *\nDisallow: /a$\n", "/ab", True),
        # An empty Disallow allows everything; rules before any user-agent line are ignored.
        ("User-agent: *\nDisallow:\n", "/a.jpg", True),
        ("Disallow: /\nUser-agent: *\nAllow: /\n", "/a.jpg", True),
        # Comments, case, white space, CRLF, a byte order mark.
        ("\ufeffUSER-AGENT : * # all\r\nDISALLOW : /p # no\r\n", "/p/x", False),
        # Percent-encoding compared in one form: encoded and unencoded unreserved characters match.
        ("User-agent: *\nDisallow: /%7Euser/\n", "/~user/a.jpg", False),
        ("User-agent: *\nDisallow: /~user/\n", "/%7euser/a.jpg", False),
        ("User-agent: *\nDisallow: /caf\u00e9/\n", "/caf%C3%A9/a.jpg", False),
        # A literal $ in a URL is matched by %24, never by the anchor.
        ("User-agent: *\nDisallow: /price-%24\n", "/price-$", False),
        ("", "/a.jpg", True),
        ("not a robots file at all \x00\xff", "/a.jpg", True),
    ],
)
def test_rules(robots: str, path: str, expected: bool) -> None:
    assert allowed(robots, path) is expected


def test_robotparser_gets_these_wrong() -> None:
    # Why the module has its own parser: the standard library's answers differ from RFC 9309's.
    cases = [
        ("User-agent: corpus\nDisallow: /\n", "/a.jpg", True),  # substring match of the agent
        # the first rule wins, not the longest
        ("User-agent: *\nDisallow: /img/\nAllow: /img/public/\n", "/img/public/a.jpg", True),
        ("User-agent: *\nDisallow: /*.jpg$\n", "/a.jpg", False),  # no wildcards
    ]
    for robots, path, rfc in cases:
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(robots.splitlines())
        assert allowed(robots, path) is rfc
        assert parser.can_fetch("corpusforge/1.0", "http://h" + path) is not rfc, robots


def test_the_disallowing_rule_is_named() -> None:
    rules = parse_robots("User-agent: corpusforge\nDisallow: /private/*.jpg\n")
    assert rules.group == "corpusforge"
    assert str(rules.disallowing_rule("/private/x/a.jpg")) == "Disallow: /private/*.jpg"
    assert parse_robots("User-agent: *\nDisallow: /\n").group == "*"


def test_only_the_first_512_kib_are_parsed() -> None:
    padding = "# " + "x" * 1000 + "\n"
    head = "User-agent: *\nDisallow: /early/\n"
    body = head + padding * (PARSE_LIMIT // len(padding) + 1) + "Disallow: /late/\n"
    rules = parse_robots(body.encode())
    assert rules.disallowing_rule("/early/a.jpg") is not None
    assert rules.disallowing_rule("/late/a.jpg") is None


def test_patterns_and_paths_normalise_alike() -> None:
    assert normalise_path("/a%2fb%7e%41") == "/a%2Fb~A"  # reserved stays encoded, unreserved decoded
    assert compile_pattern("/caf\u00e9 x").text == "/caf%C3%A9%20x"
    assert compile_pattern("/a/**/b").text == "/a/*/b"
    assert compile_pattern("/plain/").prefix == "/plain/"
