"""Tokenisation and the cleaning of 20 Newsgroups messages and AG News rows (xaipipe.data.text)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xaipipe.data.text import (
    TokenizerConfig,
    clean_agnews,
    clean_newsgroup,
    strip_footer,
    strip_header,
    strip_quotes,
    tokenize,
)

MESSAGE = (
    "From: jdoe@cs.example.edu (John Doe)\n"
    "Subject: Re: Re: Shuttle launch window\n"
    "Organization: Example University\n"
    "Lines: 9\n"
    "\n"
    "In article <1993Apr5.1@nasa.gov> smith@nasa.gov (Jane Smith) writes:\n"
    "> The shuttle launches next week.\n"
    "> Quoted again.\n"
    "\n"
    "I think the orbit is fine.\n"
    "--\n"
    "John Doe | jdoe@cs.example.edu\n"
)


# --- tokenize -------------------------------------------------------------------------------------

def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("Hello, WORLD! (Foo-Bar)") == ["hello", "world", "foo", "bar"]


def test_tokenize_lowercase_false_keeps_case():
    assert tokenize("Hello WORLD", TokenizerConfig(lowercase=False)) == ["Hello", "WORLD"]


def test_tokenize_keeps_apostrophe_suffix_only_inside_words():
    assert tokenize("Don't stop; it's John's 'quoted' rock'n'roll") == [
        "don't", "stop", "it's", "john's", "quoted", "rock'n", "roll"]


def test_tokenize_digits_are_separate_runs():
    assert tokenize("in 1993 the a1b2 model cost 3.50") == ["in", "1993", "the", "a", "1", "b", "2", "model",
                                                            "cost", "3", "50"]


def test_tokenize_underscore_is_a_separator():
    assert tokenize("snake_case_word") == ["snake", "case", "word"]


def test_tokenize_drops_tokens_longer_than_max_token_len():
    ok, too_long = "a" * 25, "b" * 26
    assert tokenize(f"{ok} {too_long} end") == [ok, "end"]  # default max_token_len=25: dropped, not cut
    assert tokenize(f"{ok} {too_long}", TokenizerConfig(max_token_len=30)) == [ok, too_long]
    assert tokenize("ab abc abcd", TokenizerConfig(max_token_len=3)) == ["ab", "abc"]


def test_tokenize_min_token_len():
    assert tokenize("a ab abc", TokenizerConfig(min_token_len=2)) == ["ab", "abc"]


def test_tokenize_unicode_letters():
    assert tokenize("Café NAÏVE Straße Привет мир Ñandú ΟΔΟΣ") == [
        "café", "naïve", "straße", "привет", "мир", "ñandú", "οδος"]
    assert tokenize("日本語のテキスト") == ["日本語のテキスト"]


def test_tokenize_uuencoded_line_is_dropped():
    uu = "M9V5N97)A=&]R(&1A=&$@9F]R('1E<W1S(&AE<F4@86YD('1H97)E('=I=&@@;&]T<PI"
    assert all(len(t) <= 25 for t in tokenize(uu))


def test_tokenizer_config_from_dict_ignores_other_keys():
    cfg = TokenizerConfig.from_dict({"lowercase": False, "max_token_len": 7, "remove_headers": True})
    assert cfg == TokenizerConfig(lowercase=False, min_token_len=1, max_token_len=7)
    assert TokenizerConfig.from_dict(None) == TokenizerConfig()


@settings(max_examples=300, deadline=None)
@given(text=st.text(), max_len=st.integers(1, 30), lowercase=st.booleans())
def test_tokenize_properties(text, max_len, lowercase):
    cfg = TokenizerConfig(lowercase=lowercase, max_token_len=max_len)
    tokens = tokenize(text, cfg)
    assert all(tokens), "empty token"
    assert not any(any(c.isspace() for c in t) for t in tokens), "token with whitespace"
    assert all(len(t) <= max_len for t in tokens)
    assert tokenize(" ".join(tokens), cfg) == tokens  # idempotent


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.from_regex(r"[a-z]{1,10}('[a-z]{1,3})?|[0-9]{1,5}", fullmatch=True), max_size=20))
def test_tokenize_recovers_joined_word_lists(words):
    assert tokenize(" ".join(words)) == words


# --- 20 Newsgroups cleaning -------------------------------------------------------------------------

def test_strip_header_keep_subject_removes_re_prefixes():
    out = strip_header(MESSAGE, keep_subject=True)
    assert out.startswith("Shuttle launch window\n\n")
    assert "From:" not in out and "Organization" not in out and "Lines:" not in out
    assert "Re:" not in out
    assert "I think the orbit is fine." in out


def test_strip_header_without_subject():
    out = strip_header(MESSAGE, keep_subject=False)
    assert out.startswith("In article <1993Apr5.1@nasa.gov>")
    assert "Shuttle launch window" not in out and "Subject" not in out


def test_strip_header_subject_case_insensitive_and_missing():
    assert strip_header("SUBJECT: RE: re:Hello\nFrom: x\n\nbody") == "Hello\n\nbody"
    assert strip_header("From: x\nLines: 1\n\nbody only") == "body only"


def test_strip_quotes_removes_attribution_and_quoted_lines():
    text = ("In article <abc@def> joe@x.org (Joe) writes:\n"
            "> quoted\n"
            "| also quoted\n"
            "own line\n"
            "Jane wrote:\n"
            "another own line")
    assert strip_quotes(text) == "own line\nanother own line"


def test_strip_quotes_only_at_line_start_for_markers():
    assert strip_quotes("a > b is true\nx | y") == "a > b is true\nx | y"


def test_strip_footer_drops_signature_after_dashes():
    text = "body line\nmore body\n--\nJohn Doe\njohn@example.org\n"
    assert strip_footer(text) == "body line\nmore body"


def test_strip_footer_without_separator_keeps_text():
    assert strip_footer("just one\nblock of text") == "just one\nblock of text"


def test_strip_footer_cuts_after_last_blank_line():
    # documented (and scikit-learn's) behaviour: a blank line also counts as a separator
    assert strip_footer("para one\n\npara two") == "para one"


def test_strip_footer_separator_on_first_line_keeps_text():
    assert strip_footer("--\nonly a signature") == "--\nonly a signature"


def test_clean_newsgroup_full_message():
    out = clean_newsgroup(MESSAGE)
    assert tokenize(out) == ["shuttle", "launch", "window", "i", "think", "the", "orbit", "is", "fine"]


def test_clean_newsgroup_handles_crlf():
    assert clean_newsgroup(MESSAGE.replace("\n", "\r\n")) == clean_newsgroup(MESSAGE)


def test_clean_newsgroup_switches():
    raw = clean_newsgroup(MESSAGE, remove_headers=False, remove_quotes=False, remove_footers=False)
    assert raw == MESSAGE
    no_quotes_only = clean_newsgroup(MESSAGE, remove_headers=False, remove_footers=False)
    assert "From: jdoe" in no_quotes_only and "> The shuttle" not in no_quotes_only


# --- AG News cleaning -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("costs #36;5 billion", "costs $5 billion"),
    ("it#39;s over", "it's over"),
    ("said quot;no comment quot; today", 'said "no comment " today'),
    ("&quot;already escaped&quot;", '"already escaped"'),
    ("&lt;b&gt;Breaking&lt;/b&gt; news", "Breaking news"),
    ("up \\$2 to close", "up $2 to close"),
    ("Texas Instruments <TXN.N> rose", "Texas Instruments rose"),
    ("AT&amp;T and AT&T", "AT&T and AT&T"),
    ("a #151; dash", "a \u2014 dash"),
    ("  many   spaces\there ", "many spaces here"),
])
def test_clean_agnews_garbage(raw, clean):
    assert clean_agnews(raw) == clean


def test_clean_agnews_fixture_garbage(ag_garbage):
    for raw, clean in ag_garbage:
        assert clean_agnews(raw) == clean


# the first two lines are rows of the official test.csv that come out right; the other three are
# rows of the same file whose word after the line break starts with "n"
@pytest.mark.parametrize("raw, word", [
    ("Reuters - Short-sellers, Wall Street's dwindling\\band of ultra-cynics", "band"),
    ("the PGP key fingerprint(s) for identities?\\This could mean a lot.", "this"),
    ("reported progress on the North Korean nuclear crisis and gave\\no indication", "no"),
    ("computer chips to allow broader\\network access with improved security", "network"),
    ("Pakistan test-fired on Wednesday a\\nuclear-capable, surface-to-surface missile", "nuclear"),
])
def test_clean_agnews_backslash_line_break_keeps_the_next_word(raw, word):
    # LIBRARY BUG (xaipipe/data/text.py, clean_agnews): the AG News readme says line breaks are
    # written as "\\n", but in the official bytes a line break is a bare backslash followed directly
    # by the next word ("dwindling\\band"; all 11 "\\n" sequences in test.csv are of this kind).
    # clean_agnews replaces the two characters "\\n" by a space and so cuts the first letter off
    # every word after a line break that starts with "n": "gave\\no" -> "gave o",
    # "broader\\network" -> "broader etwork", "a\\nuclear" -> "a uclear".
    tokens = tokenize(clean_agnews(raw))
    assert word in tokens, tokens


def test_clean_agnews_keeps_tags_when_asked():
    assert clean_agnews("&lt;b&gt;bold&lt;/b&gt; #36;1", strip_tags=False) == "<b>bold</b> $1"


def test_clean_agnews_plain_text_unchanged():
    assert clean_agnews("Plain headline, nothing to fix.") == "Plain headline, nothing to fix."
