"""What Telegram takes as a message in its HTML parse mode
(core.telegram.org/bots/api#html-style), checked before a broadcast is queued: a text
Telegram would refuse would fail for every recipient.

Tags: b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler", tg-spoiler,
a href, tg-emoji emoji-id, code, pre, blockquote (expandable). Every tag closed, in
order. Entities: only &lt; &gt; &amp; &quot; and numeric ones. At most 4096 characters
of text once the tags are gone and the entities read.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

MAX_LENGTH = 4096
_PLAIN = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler"}
_ATTRIBUTES = {
    "a": {"href"},
    "span": {"class"},
    "tg-emoji": {"emoji-id"},
    "code": {"class"},
    "pre": set(),
    "blockquote": {"expandable"},
    **{tag: set() for tag in _PLAIN},
}
_NAMED_ENTITIES = {"lt", "gt", "amp", "quot"}
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")


class TelegramHtmlError(ValueError):
    """The text is not what Telegram takes; the message says what and where."""


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ATTRIBUTES:
            raise TelegramHtmlError(f"<{tag}>: Telegram knows no such tag")
        for name, value in attrs:
            if name not in _ATTRIBUTES[tag]:
                raise TelegramHtmlError(f"<{tag} {name}>: Telegram knows no such attribute")
            if tag == "span" and value != "tg-spoiler":
                raise TelegramHtmlError('<span> only as <span class="tg-spoiler">')
            if tag == "a" and not (value or "").startswith(("http://", "https://", "tg://")):
                raise TelegramHtmlError(f"<a href={value!r}>: a link must be http(s):// or tg://")
        if tag == "span" and not attrs:
            raise TelegramHtmlError('<span> only as <span class="tg-spoiler">')
        if tag == "a" and not attrs:
            raise TelegramHtmlError("<a> without href")
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise TelegramHtmlError(f"<{tag}/>: Telegram takes no self-closing tags")

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            expected = f"</{self.open[-1]}>" if self.open else "no closing tag"
            raise TelegramHtmlError(f"</{tag}> where {expected} was expected")
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for char, entity in (("<", "&lt;"), (">", "&gt;"), ("&", "&amp;")):
            if char in data:
                raise TelegramHtmlError(f"a lone «{char}» in the text: write {entity}")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in _NAMED_ENTITIES:
            raise TelegramHtmlError(f"&{name};: only &lt; &gt; &amp; &quot; are known")
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(html.unescape(f"&#{name};"))

    def handle_comment(self, data: str) -> None:
        raise TelegramHtmlError("<!-- -->: comments are not taken")

    def handle_decl(self, decl: str) -> None:
        raise TelegramHtmlError(f"<!{decl}>: not taken")

    def handle_pi(self, data: str) -> None:
        raise TelegramHtmlError(f"<?{data}>: not taken")

    def unknown_decl(self, data: str) -> None:
        raise TelegramHtmlError(f"<![{data}]>: not taken")


def telegram_html_text(markup: str) -> str:
    """The text the user will read (tags gone, entities read); raises TelegramHtmlError
    for what Telegram would refuse, and for an empty or too long text."""
    for match in _ENTITY.finditer(markup):
        name = match[1]
        if not name.startswith("#") and (name not in _NAMED_ENTITIES or not match[0].endswith(";")):
            raise TelegramHtmlError(f"{match[0]}: only &lt; &gt; &amp; &quot; are known")
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    if checker.rawdata:  # a "<" that never became a tag
        raise TelegramHtmlError("a lone «<» in the text: write &lt;")
    if checker.open:
        raise TelegramHtmlError(f"<{checker.open[-1]}> is never closed")
    text = "".join(checker.text)
    if not text.strip():
        raise TelegramHtmlError("the text is empty")
    if len(text) > MAX_LENGTH:
        raise TelegramHtmlError(f"{len(text)} characters: Telegram takes at most {MAX_LENGTH}")
    return text


class _Preview(_Checker):
    """Re-emits a checked text as safe HTML for the admin's preview: every text escaped,
    only the tags above, a link's address escaped and opened in a new tab, a spoiler as
    `<span class="tg-spoiler">`, a custom emoji as its fallback character."""

    _SAME = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre"}

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        if tag in self._SAME:
            self.out.append(f"<{tag}>")
        elif tag == "a":
            href = html.escape(dict(attrs).get("href") or "", quote=True)
            self.out.append(f'<a href="{href}" target="_blank" rel="noopener noreferrer">')
        elif tag in ("span", "tg-spoiler"):
            self.out.append('<span class="tg-spoiler">')
        elif tag == "blockquote":
            self.out.append("<blockquote>")
        else:  # tg-emoji: its text is the emoji to show
            self.out.append("<span>")

    def handle_endtag(self, tag: str) -> None:
        super().handle_endtag(tag)
        if tag in self._SAME or tag in ("a", "blockquote"):
            self.out.append(f"</{tag}>")
        else:
            self.out.append("</span>")

    def handle_data(self, data: str) -> None:
        super().handle_data(data)
        self.out.append(html.escape(data, quote=False))

    def handle_entityref(self, name: str) -> None:
        super().handle_entityref(name)
        self.out.append(html.escape(self.text[-1], quote=False))

    def handle_charref(self, name: str) -> None:
        super().handle_charref(name)
        self.out.append(html.escape(self.text[-1], quote=False))


def telegram_html_preview(markup: str) -> str:
    """The text as the admin shows it before sending: safe HTML (see `_Preview`);
    raises TelegramHtmlError as `telegram_html_text` does."""
    telegram_html_text(markup)
    preview = _Preview()
    preview.feed(markup)
    preview.close()
    return "".join(preview.out)
