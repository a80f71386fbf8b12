import numpy as np

from emomon.models.wordtimes import token_times, word_char_spans


def test_words_are_located_in_order_and_tokens_take_their_times():
    text = "I can't believe it, really!"
    words = [("I", 0.5, 0.6), ("can't", 0.6, 0.9), ("believe", 0.9, 1.3), ("it,", 1.3, 1.5), ("really!", 1.6, 2.0)]
    assert [s[:2] for s in word_char_spans(text, words)] == [(0, 1), (2, 7), (8, 15), (16, 19), (20, 27)]
    spans = [None, (0, 1), (2, 5), (5, 6), (6, 7), (8, 15), (16, 18), (18, 19), (20, 26), (26, 27), None]
    t = token_times(text, words, spans, offset=0.5)
    assert np.isnan(t[0]).all() and np.isnan(t[-1]).all()
    assert np.allclose(t[1], [0.0, 0.1]) and np.allclose(t[2], [0.1, 0.4]) and np.allclose(t[5], [0.4, 0.8])
    assert np.allclose(t[8], [1.1, 1.5])


def test_words_missing_from_the_text_leave_nan():
    t = token_times("hello there", [("goodbye", 0.0, 1.0)], [(0, 5), (6, 11)])
    assert np.isnan(t).all()
    # repeated words map to successive occurrences
    spans = word_char_spans("no no no", [("no", 0, 1), ("no", 1, 2), ("no", 2, 3)])
    assert [s[0] for s in spans] == [0, 3, 6]
