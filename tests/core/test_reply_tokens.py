"""Reply tokens: short, lower-case, signed; any change to one, or a token not made here,
names no thread; an old one has expired."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core import links

SECRET = "k" * 48
TOKEN = links.reply_token(SECRET, "handoff", 4242, "rep", 20_500)


def test_a_token_names_its_thread_and_side_whatever_the_case():
    assert links.read_reply_token(SECRET, TOKEN.upper(), today=20_510, max_days=180) == \
        links.ReplyLink("handoff", 4242, "rep", 20_500)
    assert TOKEN == TOKEN.lower() and len(TOKEN) <= 40 and "+" not in TOKEN


@given(st.integers(0, len(TOKEN) - 1), st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-"))
def test_any_changed_character_breaks_the_token(position, character):
    changed = TOKEN[:position] + character + TOKEN[position + 1:]
    if changed == TOKEN:
        return
    with pytest.raises(links.BadLink):
        links.read_reply_token(SECRET, changed, today=20_500, max_days=180)


@given(st.text(max_size=80))
def test_text_not_made_here_names_nothing(text):
    with pytest.raises(links.BadLink):
        links.read_reply_token(SECRET, text, today=20_500, max_days=180)


def test_another_secret_or_an_old_token_is_refused():
    with pytest.raises(links.BadLink):
        links.read_reply_token("x" * 48, TOKEN, today=20_500, max_days=180)
    with pytest.raises(links.ExpiredLink):
        links.read_reply_token(SECRET, TOKEN, today=20_681, max_days=180)
    assert links.read_reply_token(SECRET, TOKEN, today=20_680, max_days=180).thread_id == 4242
