"""Tokenisation and text cleaning shared by the text datasets.

Tokens are lower-cased (``lowercase``) runs of letters with an optional apostrophe suffix (``don't``)
or runs of digits; punctuation is dropped. Tokens longer than ``max_token_len`` characters (uuencoded
attachments and ASCII art in 20 Newsgroups) are dropped. The same function is used at training time,
in the explanation CLI and for custom data, so a word means the same thing everywhere.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+", re.UNICODE)


@dataclass(frozen=True)
class TokenizerConfig:
    lowercase: bool = True
    min_token_len: int = 1
    max_token_len: int = 25

    @classmethod
    def from_dict(cls, d: dict | None) -> "TokenizerConfig":
        d = d or {}
        return cls(**{k: d[k] for k in ("lowercase", "min_token_len", "max_token_len") if k in d})


def tokenize(text: str, cfg: TokenizerConfig = TokenizerConfig()) -> list[str]:
    """Split ``text`` into word tokens (see module docstring). Text is NFC-normalised first and the
    typographic apostrophe (U+2019) counts as ``'``."""
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'")
    if cfg.lowercase:
        text = text.lower()
    return [t for t in TOKEN_RE.findall(text) if cfg.min_token_len <= len(t) <= cfg.max_token_len]


# --- 20 Newsgroups -------------------------------------------------------------------------------
_QUOTE_RE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_header(text: str, keep_subject: bool = True) -> str:
    """Drop the e-mail header block (up to the first blank line); optionally keep the Subject text."""
    header, _sep, body = text.partition("\n\n")
    if not keep_subject:
        return body
    subject = ""
    for line in header.splitlines():
        if line.lower().startswith("subject:"):
            subject = line.split(":", 1)[1].strip()
            subject = re.sub(r"^(re:\s*)+", "", subject, flags=re.IGNORECASE)
            break
    return (subject + "\n\n" + body) if subject else body


def strip_quotes(text: str) -> str:
    """Drop quoted lines of earlier messages and their attribution lines ("... writes:")."""
    return "\n".join(line for line in text.split("\n") if not _QUOTE_RE.search(line))


def strip_footer(text: str) -> str:
    """Drop a signature block: everything after the last line made only of dashes (or blank)."""
    lines = text.strip().split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip().strip("-") == "":
            break
    else:
        return text
    return "\n".join(lines[:i]) if i > 0 else text


def clean_newsgroup(text: str, remove_headers: bool = True, keep_subject: bool = True,
                    remove_quotes: bool = True, remove_footers: bool = True) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if remove_headers:
        text = strip_header(text, keep_subject=keep_subject)
    if remove_quotes:
        text = strip_quotes(text)
    if remove_footers:
        text = strip_footer(text)
    return text


# --- AG News -------------------------------------------------------------------------------------
_NUM_ENTITY_RE = re.compile(r"#(\d{2,4});")
_NAMED_ENTITY_RE = re.compile(r"(?<![&\w])(quot|amp|lt|gt|nbsp|hellip);")
_TAG_RE = re.compile(r"<[^<>]{0,40}>")


def _numeric_entity(m: re.Match) -> str:
    n = int(m.group(1))
    if 128 <= n <= 159:  # Windows-1252 code points written as numeric entities (#151; = em dash)
        return bytes([n]).decode("cp1252", errors="replace")
    try:
        return chr(n)
    except ValueError:
        return " "


def clean_agnews(text: str, strip_tags: bool = True) -> str:
    """Undo AG News' garbage entities (``#36;`` -> ``$``, ``#39;`` -> ``'``, bare ``quot;``), HTML
    escapes (``&lt;``) and backslash escapes (``\\$``, a bare backslash for a line break); drop tags such as ``<b>`` and ticker
    symbols such as ``<TXN.N>`` when ``strip_tags``."""
    # the CSV marks line breaks with a bare backslash before the next word ("gave\\no" is "gave no"),
    # and escapes dollars as "\\$"
    text = text.replace("\\$", "$").replace("\\", " ")
    text = _NUM_ENTITY_RE.sub(_numeric_entity, text)
    text = _NAMED_ENTITY_RE.sub(lambda m: "&" + m.group(0), text)
    text = html.unescape(text)
    if strip_tags:
        text = _TAG_RE.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()
