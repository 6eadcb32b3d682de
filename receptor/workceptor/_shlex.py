"""Shell-like splitting as google/shlex does it (the library upstream splits ``params`` with).

Words are separated by space, tab, CR and LF; ``"..."`` quotes with backslash escapes inside,
``'...'`` quotes literally, a backslash escapes the next character, and ``#`` at the start of a
word begins a comment that runs to the end of the line. The error texts are google/shlex's,
because upstream shows them as the unit's Detail.

Standard library only: the command runner imports it under ``python -I -S``.
"""

_SPACE = " \t\r\n"


class SplitError(ValueError):
    """The text cannot be split (an unterminated quote or escape)."""


def split(text: str) -> list[str]:
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        word: list[str] = []
        while i < n and text[i] not in _SPACE:
            c = text[i]
            i += 1
            if c == "\\":
                if i >= n:
                    raise SplitError("EOF found after escape character")
                word.append(text[i])
                i += 1
            elif c == "'":
                end = text.find("'", i)
                if end < 0:
                    raise SplitError("EOF found when expecting closing quote")
                word.append(text[i:end])
                i = end + 1
            elif c == '"':
                while True:
                    if i >= n:
                        raise SplitError("EOF found when expecting closing quote")
                    c = text[i]
                    i += 1
                    if c == '"':
                        break
                    if c == "\\":
                        if i >= n:
                            raise SplitError("EOF found after escape character")
                        c = text[i]
                        i += 1
                    word.append(c)
            else:
                word.append(c)
        words.append("".join(word))
    return words
