"""Lexical cues of a query: the command or suffix around a name, and the words that mark a question or a need.

People ask a search box or an assistant for a named thing with a command (打开qq, 帮我打开支付宝, 访问百度的网页,
open taobao) or a suffix (京东官网, 抖音app, 美团小程序), and they state needs with question and need words
(怎么办, 多少钱, 哪里, 附近, 推荐). ``split_command`` takes the wrapper off, so the name inside can be matched
against the lexicon; the flags feed the intent classifier.

Strong verbs (打开, 启动, 访问…) are taken off whatever follows them. Weak ones (去, 上, 用, 开, 玩, 进) are taken off
only when what follows is a known name (``keep_weak``): 去哪儿 and 上海 must stay whole. All matching is on the
compact form (normalised, no spaces or punctuation, lower case).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# polite or filler words before the verb (请帮我打开…, 那你帮我打开…, 把淘宝打开)
_LEAD = ("那你帮我", "你帮我", "请帮我", "麻烦你", "帮帮我", "请你", "帮忙", "麻烦", "帮我", "给我", "替我", "请", "我要", "我想",
         "把", "快")
STRONG_VERBS = ("打开", "开启", "启动", "运行", "进入", "访问", "浏览", "登录", "登陆", "下载", "安装", "搜索", "搜一下", "搜搜",
                "查找", "找一下", "找到", "跳转到", "跳转", "切到", "切换到", "点开", "链接到", "open", "launch", "start", "goto",
                "download", "visit")
WEAK_VERBS = ("去", "上", "用", "使用", "开", "玩", "进", "看", "找", "搜", "看看", "看一下")
_AFTER_VERB = ("一下",)
# what a user puts after a name they want: the app, its site, its mini-program…
SUFFIXES = ("官方网站", "官方app", "官方网", "的官网", "的网页", "的网站", "官网", "网页版", "手机版", "客户端", "小程序", "网站",
            "网页", "app", "软件", "应用", "首页", "主页", "入口", "下载", "登录", "打开", "会员", "客服电话", "客服", "官方客服")
_TRAIL = ("一下吧", "一下", "好吗", "行吗", "行不", "谢谢", "可以吗", "吧", "啊", "呀", "哦", "哇", "呢", "嘛")
QUESTION_WORDS = ("怎么", "怎样", "如何", "为什么", "为啥", "多少", "哪里", "哪儿", "哪个", "哪家", "哪些", "哪种", "什么", "啥",
                  "能不能", "可不可以", "是不是", "有没有", "要不要", "好不好", "靠谱吗", "值得", "区别", "需要", "吗", "么", "?")
NEED_WORDS = ("附近", "周边", "最近的", "推荐", "想要", "想找", "想学", "想去", "想吃", "想买", "适合", "便宜", "好玩", "好吃", "求",
              "找个", "攻略", "教程", "入门", "技巧", "方法", "注意", "不舒服", "睡不着", "饿了", "无聊", "带娃", "周末", "晚上",
              "怎么办", "疼", "痛", "哪里有", "有什么", "一般", "大概",
              # a complaint about a kind of service is a need too (网约车太贵了, 快递太慢了), not a request for it
              "太贵", "好贵", "太慢", "太挤", "坏了", "不好用", "老是", "总是")
# Words that qualify a need without saying what it is: where (附近), how (怎么), what (什么), asking for (推荐, 需要),
# negation and filler (不好, 不会, 一个, 东西). An item tag that is one of them (附近) or a tag that merely contains one
# (今天吃什么 for 买什么好, 肠胃不好 for 心情不好) is no evidence that the item serves the need (``tags.matched_tags``).
MODIFIER_WORDS = frozenset({"附近", "周边", "最近", "推荐", "哪里", "哪儿", "哪个", "哪家", "什么", "怎么", "怎么办", "想要",
                            "需要", "一下", "有没有", "可以", "不好", "不会", "不能", "不想", "不了", "不到", "没有", "知道",
                            "不知道", "一个", "这个", "那个", "还是", "自己", "今天", "东西", "想去", "多少", "多少钱"})
_NAME_CHARS = re.compile(r"^[\w]+$")


@dataclass(frozen=True, slots=True)
class Cues:
    core: str  # the query without its command and suffix ("" when nothing would be left)
    verb: str  # the command verb taken off ("" when none)
    strong: bool  # a strong verb (打开, 访问…), which asks for one thing whatever follows
    suffix: str  # the suffix taken off ("" when none)
    question: bool  # a question word (怎么, 多少钱, 吗…)
    need: bool  # a need word (附近, 推荐, 想找…)

    @property
    def wrapped(self) -> bool:
        """A command or a suffix was taken off: the rest is what the user names."""
        return bool(self.verb or self.suffix) and bool(self.core)

    def name_shaped(self) -> bool:
        """The core looks like a name: short, word characters only, no question or need words."""
        c = self.core
        return (2 <= len(c) <= 12 and _NAME_CHARS.match(c) is not None
                and not any(w in c for w in QUESTION_WORDS) and not any(w in c for w in NEED_WORDS))


def _strip_prefix(s: str, options: tuple[str, ...]) -> tuple[str, str]:
    for o in sorted(options, key=len, reverse=True):
        if s.startswith(o) and len(s) > len(o):
            return s[len(o):], o
    return s, ""


def _strip_suffix(s: str, options: tuple[str, ...]) -> tuple[str, str]:
    for o in sorted(options, key=len, reverse=True):
        if s.endswith(o) and len(s) > len(o):
            return s[: -len(o)], o
    return s, ""


def split_command(cq: str, keep_weak: Callable[[str], bool] = lambda _: False, names: Sequence[str] = (),
                  words: Sequence[str] = ()) -> Cues:
    """The cues of compact query ``cq``. ``keep_weak(rest)`` says whether ``rest`` is a known name, which lets a weak
    verb (去, 用, 上…) be taken off. ``names``: names of things the query contains (饿了么, 什么值得买); their
    characters are no question or need words (么 and 饿了 in 饿了么红包), so they are masked before those are looked
    for. ``words``: the query's words (the tokenizer's); a strong verb that only begins a longer word there is no
    verb (浏览器, 下载器 and 搜索引擎 are things, not 浏览 + 器)."""
    marked = cq
    for n in names:
        if n:
            marked = marked.replace(n, "|")
    question = any(w in marked for w in QUESTION_WORDS)
    need = any(w in marked for w in NEED_WORDS)
    s = cq
    while True:  # 那你帮我 / 请 / 麻烦 … before the verb
        s2, lead = _strip_prefix(s, _LEAD)
        if not lead:
            break
        s = s2
    before = s
    s, verb = _strip_prefix(s, STRONG_VERBS)
    if verb and (any(len(w) > len(verb) and w.startswith(verb) and before.startswith(w) for w in words)
                 or (len(s) == 1 and not keep_weak(s))):  # nor one that leaves one character naming nothing: 下载器
        s, verb = before, ""
    strong = bool(verb)
    if not verb:
        rest, weak = _strip_prefix(s, WEAK_VERBS)
        if weak:
            rest2, _ = _strip_prefix(rest, _AFTER_VERB)
            for candidate in (rest, rest2, _strip_suffix(rest, SUFFIXES)[0]):
                if keep_weak(candidate):
                    s, verb = rest, weak
                    break
    if verb:
        s, _ = _strip_prefix(s, _AFTER_VERB)
    s, _ = _strip_suffix(s, _TRAIL)
    s, suffix = _strip_suffix(s, SUFFIXES)
    if suffix == "打开" and not verb:  # 百度浏览器打开: a verb after the name
        verb, strong = suffix, True
        suffix = ""
    elif suffix:
        s, _ = _strip_suffix(s, ("的",))
    if not (verb or suffix):
        s = cq
    return Cues(s, verb, strong, suffix, question, need)


__all__ = ["Cues", "NEED_WORDS", "QUESTION_WORDS", "STRONG_VERBS", "SUFFIXES", "WEAK_VERBS", "split_command"]
