import pytest

from pipeline.fetch.robots import DEFAULT_DISALLOWED_DIRECTIVES, is_opted_out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["noai"], "noai"),
        (["noindex, noimageai"], "noindex"),
        (["NoImageAI"], "noimageai"),
        (["all"], None),
        ([], None),
        (["otherbot: noai"], None),
        (["corpusforge: noai"], "noai"),
        (["*: noimageai"], "noimageai"),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], "noai"),
        (["nofollow", "noai"], "noai"),
        (["noml"], "noml"),  # counts as noai
        (["corpusforge: NoML"], "noml"),
        (["otherbot: noml"], None),
    ],
)
def test_directives(values: list[str], expected: str | None) -> None:
    assert is_opted_out(values, "corpusforge", DEFAULT_DISALLOWED_DIRECTIVES) == expected


def test_empty_directive_list_ignores_the_header() -> None:
    assert is_opted_out(["noai"], "corpusforge", ()) is None
    assert is_opted_out(["noml"], "corpusforge", ()) is None


def test_noml_applies_where_noai_does() -> None:
    assert is_opted_out(["noml"], "corpusforge", ("noimageai",)) is None
    assert is_opted_out(["noml"], "corpusforge", ("noml",)) == "noml"
