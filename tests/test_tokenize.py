from search.tokenize import Tokenizer, english_stop_words_in, pinyin_keys


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


def test_a_name_jieba_cannot_cut_out_is_matched_whole():
    tk = Tokenizer(Tokenizer.user_words_from(["肯德基(万达店)", "杰瑞·布鲁克海默"]))
    assert tk.words("肯德基(万达店)") == ("肯德基(万达店)",)
    assert "(" not in tk.terms("肯德基(万达店)") and "肯德基(万达店)" in tk.terms("肯德基(万达店)")


def test_every_user_word_counts_in_jiebas_total():
    """Every catalog word goes in through ``add_word``, those jieba cannot cut out too: jieba scores a cut against
    its dictionary's total, so leaving them out would shift the cuts of other text."""
    import jieba

    from search.tokenize import word_freq

    words = ["网易云音乐", "肯德基(万达店)", "杰瑞·布鲁克海默"]
    base = jieba.Tokenizer()
    base.initialize()
    assert Tokenizer(words)._jieba.total == base.total + sum(word_freq(w) for w in words)


def test_names_jieba_cannot_cut_out_add_one_dictionary_entry_in_all():
    import jieba

    base = jieba.Tokenizer()
    base.initialize()
    outside = [f"分店{i}号(测试)" for i in range(200)]  # "(" is outside jieba's blocks
    tk = Tokenizer(outside)
    assert len(tk._jieba.FREQ) == len(base.FREQ) + 1
    assert tk.words(outside[7]) == (outside[7],)


def test_tokenizers_of_one_word_list_share_their_segmenter():
    a = Tokenizer(["网易云音乐", "饿了么"])
    b = Tokenizer(["饿了么", "网易云音乐", "饿了么"])  # the same list, in another order and with a repeat
    c = Tokenizer(["网易云音乐"])
    assert a._jieba is b._jieba and a._jieba is not c._jieba
    assert a.words("饿了么红包")[0] == "饿了么"


def test_a_segmenter_goes_with_the_last_tokenizer_using_it():
    import gc
    import weakref

    tk = Tokenizer(["只在这个测试里的名字甲"])
    ref = weakref.ref(tk._jieba)
    del tk
    gc.collect()
    assert ref() is None  # a reload to another catalog does not keep the old catalog's dictionary


def test_dictionary_verbs_come_from_jiebas_tags():
    from search.tokenize import dictionary_verbs

    verbs = dictionary_verbs()
    assert {"冒充", "投诉", "举报", "下载"} <= verbs  # tagged v in jieba's dictionary
    assert not {"淘宝", "华为", "软件", "平安"} & verbs  # a name (nr), a noun, an adjective
    assert dictionary_verbs() is verbs  # read once per process


def test_dictionary_organisations_come_from_jiebas_tags():
    from search.tokenize import dictionary_organisations, dictionary_verbs

    orgs = dictionary_organisations()
    assert {"微软公司", "联想集团", "中国移动通信"} <= orgs  # tagged nt in jieba's dictionary
    assert not {"小米粥", "京东方", "贝多芬", "投诉"} & orgs  # a noun, a proper noun (nz), a name (nr), a verb
    assert not orgs & dictionary_verbs()


def test_english_stop_words_of_a_phrase_are_not_terms():
    t = Tokenizer(["microsoft to do"])
    assert t.terms("train tickets to beijing") == ("train", "tickets", "beijing")
    assert t.terms("find a dentist") == ("find", "dentist")
    # the same rule on a catalog text: the name "Microsoft To Do" no longer carries "to"
    assert "to" not in t.terms("microsoft to do")
    assert "do" in t.terms("microsoft to do")


def test_a_stop_word_that_is_the_name_or_part_of_a_word_stays():
    t = Tokenizer(["a站", "it之家"])
    assert t.terms("it") == ("it",)  # nothing else to search by
    assert "a站" in t.terms("a站")  # not a space-separated word
    assert t.terms("at&t") == ("at", "t")
    assert "it" in t.terms("it之家 app")


def test_stop_words_are_found_only_beside_another_ascii_word():
    assert english_stop_words_in("to do") == frozenset({"to"})
    assert english_stop_words_in("the it") == frozenset()  # stop words only: kept
    assert english_stop_words_in("去 the 超市") == frozenset()  # no other ASCII word
    assert english_stop_words_in("ping an insurance") == frozenset({"an"})
