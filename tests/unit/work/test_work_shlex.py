"""google/shlex splitting of work-command params (work.md §4.1)."""

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receptor.workceptor._shlex import SplitError, split


@pytest.mark.parametrize(
    "text,words",
    [
        ("", []),
        ("   ", []),
        ("a b  c", ["a", "b", "c"]),
        ("\ta\nb\r", ["a", "b"]),
        ("'a b' \"c d\"", ["a b", "c d"]),
        ('-c "echo hi; exit 3"', ["-c", "echo hi; exit 3"]),
        ("-c \"trap '' INT; echo started\"", ["-c", "trap '' INT; echo started"]),
        ('"a\\"b" \'a\\b\'', ['a"b', "a\\b"]),
        ("a\\ b", ["a b"]),
        ('""', [""]),
        ("x'y'z", ["xyz"]),
        ("a # comment\nb", ["a", "b"]),
        ("a#b", ["a#b"]),
        ("# only a comment", []),
    ],
)
def test_split(text, words):
    assert split(text) == words


@pytest.mark.parametrize(
    "text,error",
    [
        ("'unterminated", "EOF found when expecting closing quote"),
        ('"unterminated', "EOF found when expecting closing quote"),
        ("trailing\\", "EOF found after escape character"),
        ('"esc\\', "EOF found after escape character"),
    ],
)
def test_split_errors(text, error):
    with pytest.raises(SplitError, match=f"^{error}$"):
        split(text)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)))
def test_quoted_words_round_trip(words):
    # Python's shlex.quote output uses only single quotes, which both dialects read alike.
    assert split(" ".join(shlex.quote(w) for w in words)) == words


@given(st.text(max_size=40))
def test_never_crashes(text):
    try:
        split(text)
    except SplitError:
        pass
