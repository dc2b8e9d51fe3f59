from search.tokenize import Tokenizer, pinyin_keys


def test_user_dictionary_keeps_names_whole():
    tk = Tokenizer(Tokenizer.user_words_from(["网易云音乐", "12306", "饿了么"]))
    assert tk.words("网易云音乐") == ("网易云音乐",)
    assert "12306" in tk.words("12306退票")
    assert "饿了么" in tk.words("饿了么红包")


def test_terms_add_bigrams_for_partial_and_typo_matching():
    tk = Tokenizer([])
    terms = tk.terms("肯得基")
    assert "肯得" in terms and "得基" in terms


def test_pinyin_keys():
    assert pinyin_keys("肯德基") == ("kendeji", "kdj")
    assert pinyin_keys("qq音乐") == ("qqyinyue", "qqyy")
    assert pinyin_keys("12306") == ("12306", "12306")
