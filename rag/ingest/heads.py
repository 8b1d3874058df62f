"""What the lines around an article's text are: headlines, bylines, datelines, photo credits.

Pure functions over one line (or the start of one paragraph) each, so the parser
(rag.ingest.structure)
reads as a walk over the page and these patterns can be tested one by one. They cover the two
papers of the project: a 2024 industry page (本报记者 吴丽琳 on its own line) and the People's
Daily of January 1998 (本报北京１月１日讯…, 新华社贵阳１２月３１日电（记者刘子富）, 据新华社…电,
（新华社记者兰红光摄）, poems under a title and an author's name).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_HEADING = 40
# Sentence punctuation: a line holding any of it is a paragraph, not a heading.
_SENTENCE_MARKS = "。！？!?；;，,"
_SENTENCE_MARK = re.compile(f"[{_SENTENCE_MARKS}]")
# How rag.ingest.formats writes a table's row (its cells between bars): a line of a table, not
# a heading however short it is.
TABLE_CELLS = " | "

_NUM = "0-9０-９零〇○一二三四五六七八九十两"
_DATE = rf"[{_NUM}]{{1,3}}月[{_NUM}]{{1,3}}日"
_PLACE = r"[\u4e00-\u9fff·]{1,10}?"
_AGENCY = r"(?:本报|新华社|中新社|人民日报|经济日报|光明日报|解放军报|中国日报)"
# 本报北京１月１日讯 · 新华社贵阳１２月３１日电（记者刘子富） · 据新华社北京１２月３０日电 ·
# 本报讯 · 本报驻东京记者孙东民报道：… The credit in brackets and a "记者…报道：" run belong to it.
DATELINE = re.compile(
    rf"^(?:据)?{_AGENCY}(?:驻{_PLACE}记者)?(?P<place>{_PLACE})?(?P<date>{_DATE})?(?:专)?[电讯]"
    rf"(?:（[^（）\n]{{1,60}}）)?"
    rf"(?:[^，。：:\n]{{0,40}}?(?:记者|通讯员)[^，。：:\n]{{1,40}}?报道[：:])?"
)
# A byline on a line of its own: 本报记者 吴丽琳 · 本报驻埃及记者朱梦魁 · 新华社记者贾永黄秋生.
BYLINE_LINE = re.compile(
    r"^(?:本报|新华社|中新社|[\u4e00-\u9fff]{2,8}报)?(?:驻[\u4e00-\u9fff]{1,8})?"
    r"(?:特约|实习)?(?:记者|通讯员|评论员|特派记者|编者)[\s　]*[\u4e00-\u9fff·、\s　]{2,30}$"
)
# A bare author's name under a headline (essays, poems, commentary): 姚彩霞 · 司马义·艾买提 ·
# 中国建设银行行长王岐山 is not bare and is caught by its title words below.
AUTHOR_NAME = re.compile(r"^[\u4e00-\u9fff]{2,4}(?:·[\u4e00-\u9fff]{2,6})?$")
AUTHOR_TITLED = re.compile(
    r"^[\u4e00-\u9fff（）、]{2,20}"
    r"(?:行长|部长|主任|书记|主席|总理|局长|院长|教授|研究员|会长|司长|经理|省长|市长)"
    r"[\u4e00-\u9fff·]{2,6}$"
)
# The common surnames (about 200 of the 百家姓), and the compound ones.
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞"
    "左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕"
    "屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧"
    "闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝海"
)
_COMPOUND_SURNAMES = {
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "南宫",
    "皇甫",
    "令狐",
    "慕容",
    "公孙",
}
# A photo's credit on its own line: （新华社记者兰红光摄） · （传真照片） · （附图片１张）.
PHOTO_CREDIT = re.compile(
    r"^（(?:[^（）]{0,40}(?:摄|摄影|摄影报道|照片|传真照片|图片|绘|供图)"
    r"|附(?:图片|照片)[０-９0-9一二三四五六七八九十]*张?)）$"
)
PHOTO_MARKER = re.compile(r"（(?:附)?(?:图片|照片)(?:[０-９0-9一二三四五六七八九十]+张)?）")
# Letters in brackets on a line of their own mark which photos or columns a report goes with.
# So does a row of stars between an article and its editor's note (＊＊＊).
LAYOUT_MARKER = re.compile(r"^(?:（[Ａ-ＺA-Z](?:[、，][Ａ-ＺA-Z])*）|[＊*☆★·]{2,})$")
# A line wholly in brackets after a report: its author's credit, （河南开封市牛建海） · （作者为…）.
CLOSING_CREDIT = re.compile(r"^（[^（）]{1,60}）$")
# A heading that numbers a part of its article: 一、… · （一）… · 第五章奖励与惩罚 · 之二.
# A list's part: 宗教界（６０人）. An artwork printed with its title: 俄罗斯之湖（油画）.
SECTION_NUMBER = re.compile(
    r"^(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十0-9０-９]+[)）]"
    r"|第[一二三四五六七八九十百0-9０-９]+[章节条部分]|.{0,4}之[一二三四五六七八九十])"
    r"|（[0-9０-９]+人）$"
)
ARTWORK = re.compile(r"（(?:油画|中国画|国画|书法|漫画|版画|篆刻|水彩画|年画|剪纸|雕塑)）")
# A paragraph that closes with a credit closes its article: （新华社北京１２月３１日电） ·
# （杜中武孙传刚） · （作者为…） · （本报渥太华电） · （龚萱）.
_CLOSING = re.compile(
    r"（(?:[^（）]{0,30}[电稿]|作者[^（）]{0,40}|[\u4e00-\u9fff]{2,12}|据[^（）]{1,20})）$"
)
_PHOTO_TEXT = re.compile(r"^(?:图为|压题照片)|（[^（）]*(?:摄|照片|摄影报道)）$")
# When a news lead says its event happened, within its first 40 characters.
_LEAD_TIME = re.compile(
    rf"[{_NUM}]{{1,3}}日|[{_NUM}]{{4}}年|[{_NUM}]{{1,2}}月|近日|日前|最近|近期|年来"
)
_LEAD_TIME_WITHIN = 40
# What follows a report's closing credit and still belongs to it: a second dispatch (又讯), the
# editor's afterword (编后, 编辑手记, 编者按), the reporter's notes (记者手记).
AFTERWORD = re.compile(r"^(?:又讯|编后|编辑手记|编者按|记者手记|附[：:])")
# Brackets that close no report: a date or what opens with one, （一九九七年十二月三十一日） ·
# （１９９８年１月２２日…会议通过）; a note to the reader, （见下图） · （全文见第四版）; sentences.
_NOT_A_CREDIT = re.compile(
    rf"（(?:[{_NUM}]{{2,4}}年|[{_NUM}]{{1,3}}月|见|全文|[^（）]*。)[^（）]*）"
)
# A head that gathers several signed pieces into one: …发言摘要 · 笔谈 · 来信选登 · 摘编.
DIGEST = re.compile(r"(?:发言|讲话|来信|文章)(?:摘要|摘编|选登|选编)|笔谈$")
# Discourse openers: a short block opening with one is a paragraph, never a headline.
OPENERS = re.compile(
    r"^(一是|二是|三是|四是|五是|六是|一方面|另一方面|首先|其次|再次|最后|此外|另外|其中|同时|"
    r"与此同时|当前|目前|会议|本报|据悉|据了解|根据|总之|[一二三四五六七八九十]+、|[（(][一二三四五六七八九十0-9]+[)）])"
)


def opens_with_time(text: str) -> bool:
    """Whether a paragraph's first sentence says when, early, as a news lead does:
    …１５日上午在加拉加斯开幕 · …近日全面开通 · 七年来，浦东….（A dateline's date is not
    counted here: rag.ingest.heads.dateline_length reads it.)"""
    return bool(_LEAD_TIME.search(text.split("。", 1)[0][:_LEAD_TIME_WITHIN]))


# The parser asks this of every line several times over (of each line and of its neighbours):
# remembered for the lines of about a page's worth of recent ones.
@lru_cache(maxsize=4096)
def heading_like(text: str) -> bool:
    """Short and holding no sentence: a headline, kicker, subtitle, section heading or verse line.

    Headings may end on a closing quote (迭代优化产业空间布局“一张图”) but hold no sentence.
    """
    return (
        bool(text)
        and len(text) <= MAX_HEADING
        and not _SENTENCE_MARK.search(text)
        and TABLE_CELLS not in text
        and text[-1] not in "、：:…"
        and not PHOTO_CREDIT.match(text)
        and not LAYOUT_MARKER.match(text)
    )


def headline_with_comma(text: str) -> bool:
    """A short line that may be a headline although it holds a comma (忠诚的共产主义战士，…逝世):
    it is one when a dateline follows."""
    return len(text) <= MAX_HEADING and text[-1] not in "。！？!?；;：:、…，,"


def asks_or_exclaims(text: str) -> bool:
    """A short line closing on a question or exclamation mark, as a headline may (环球虎年？
    （附图片１张） · 拜年变了味，当刹！); it is one when a byline stands under it."""
    text = PHOTO_MARKER.sub("", text)
    return (
        bool(text)
        and len(text) <= MAX_HEADING
        and text[-1] in "？！?!"
        and not any(ch in text for ch in "。；;：:")
    )


def verse_line(text: str) -> bool:
    """A line of a poem: short, and not closing a sentence (a comma inside is fine)."""
    return len(text) <= MAX_HEADING and text[-1] not in "。！？!?" and not PHOTO_MARKER.search(text)


def is_byline(text: str) -> bool:
    """A line that only says who wrote the article."""
    return bool(BYLINE_LINE.match(text) or AUTHOR_TITLED.match(text))


def is_personal_name(text: str) -> bool:
    """A bare name that opens with a Chinese surname (马俊峰 · 南宫品), not a short rubric or
    topic (图片新闻 · 旅游摄影) that is as short."""
    return is_author_name(text) and (text[0] in _SURNAMES or text[:2] in _COMPOUND_SURNAMES)


def is_author_name(text: str) -> bool:
    """A bare name of two to four characters (or a transliterated one with ·)."""
    return bool(AUTHOR_NAME.match(text))


def dateline_length(text: str) -> int:
    """How many leading characters of a paragraph are its dateline (0 when it has none)."""
    match = DATELINE.match(text)
    return match.end() if match else 0


def is_photo_text(text: str) -> bool:
    """A photo's caption or credit: 图为… · 压题照片为… · …（新华社记者兰红光摄） ·
    …（张治平安少兵摄影报道）: the text under a picture, which closes no report."""
    return bool(PHOTO_CREDIT.match(text) or _PHOTO_TEXT.search(text))


def is_credit_line(text: str) -> bool:
    """A line wholly in brackets that credits the report above it: （通宣） · （作者为…）; not a
    layout marker （Ａ、Ｂ）, a date or a note (rag.ingest.heads._NOT_A_CREDIT)."""
    return (
        bool(CLOSING_CREDIT.match(text))
        and not LAYOUT_MARKER.match(text)
        and not _NOT_A_CREDIT.fullmatch(text)
    )


def closes_article(text: str) -> bool:
    """Whether a paragraph ends with the credit that closes a report (a date in brackets,
    （一九九七年十二月三十一日）, or a note, （见下图）, closes nothing)."""
    match = _CLOSING.search(text)
    return match is not None and not _NOT_A_CREDIT.fullmatch(match.group())


_CN_DIGITS = {ch: i for i, ch in enumerate("〇一二三四五六七八九")} | {"零": 0, "○": 0, "两": 2}


def _number(text: str) -> int | None:
    """１２, 12, 十二, 三十一, 二十 as an int (None when not a number of this kind)."""
    text = unicodedata.normalize("NFKC", text)
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        t = _CN_DIGITS.get(tens, 0) if tens else 1
        o = _CN_DIGITS.get(ones, 0) if ones else 0
        return (
            t * 10 + o
            if (not tens or tens in _CN_DIGITS) and (not ones or ones in _CN_DIGITS)
            else None
        )
    if text and all(ch in _CN_DIGITS for ch in text):
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    return None


_MONTH_DAY = re.compile(rf"(?:([{_NUM}]{{4}})年)?([{_NUM}]{{1,3}})月([{_NUM}]{{1,3}})日")


def dateline_date(text: str, bulletin_date: str) -> str | None:
    """The ISO date a dateline or lead gives (the first 月…日 in `text`), or None.

    A dateline names month and day; its year is the bulletin's, or the year before when the
    month is later than the bulletin's (１２月３１日电 in a January 1998 paper is 1997-12-31).
    """
    match = _MONTH_DAY.search(text)
    if not match:
        return None
    month, day = _number(match.group(2)), _number(match.group(3))
    if month is None or day is None or not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    year = _number(match.group(1)) if match.group(1) else None
    if year is None:
        if not bulletin_date[:4].isdigit():
            return None
        year = int(bulletin_date[:4])
        issued = bulletin_date[5:7]
        if issued.isdigit() and month > int(issued):
            year -= 1
    return f"{year:04d}-{month:02d}-{day:02d}"
