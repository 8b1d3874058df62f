"""Places and years a text names: how articles get their region, and how questions are matched
to the articles about the place or time they ask about.

The gazetteer is China's provincial-level divisions with their usual English spellings, so an
English question about "Ningxia" finds the article whose metadata says 宁夏. It is a list of the
country's divisions, not of the places in one bulletin.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

PROVINCES: dict[str, tuple[str, ...]] = {
    "北京": ("beijing", "peking"),
    "天津": ("tianjin",),
    "上海": ("shanghai",),
    "重庆": ("chongqing",),
    "河北": ("hebei",),
    "山西": ("shanxi",),
    "辽宁": ("liaoning",),
    "吉林": ("jilin",),
    "黑龙江": ("heilongjiang",),
    "江苏": ("jiangsu",),
    "浙江": ("zhejiang",),
    "安徽": ("anhui",),
    "福建": ("fujian",),
    "江西": ("jiangxi",),
    "山东": ("shandong",),
    "河南": ("henan",),
    "湖北": ("hubei",),
    "湖南": ("hunan",),
    "广东": ("guangdong",),
    "海南": ("hainan",),
    "四川": ("sichuan",),
    "贵州": ("guizhou",),
    "云南": ("yunnan",),
    "陕西": ("shaanxi",),
    "甘肃": ("gansu",),
    "青海": ("qinghai",),
    "台湾": ("taiwan",),
    "内蒙古": ("inner mongolia", "nei mongol"),
    "广西": ("guangxi",),
    "西藏": ("tibet", "xizang"),
    "宁夏": ("ningxia",),
    "新疆": ("xinjiang",),
    "香港": ("hong kong",),
    "澳门": ("macau", "macao"),
}
_ENGLISH = {
    name: re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
    for name, names in PROVINCES.items()
}
# What follows a province's name in its full form: 北京市, 四川省, 宁夏回族自治区, 香港特别行政区.
_SUFFIXES = ("省", "市", "自治区", "回族自治区", "壮族自治区", "维吾尔自治区", "特别行政区", "地区")
# A year of this century or the last, alone or as a range such as 2024—2028.
_YEAR_RANGE = re.compile(r"(?<!\d)((?:19|20)\d\d)(?:\s*[—–\-~至到]\s*((?:19|20)\d\d))?(?!\d)")


def first_province(text: str) -> str | None:
    """The province named first in `text` (Chinese names), or None."""
    found = [(text.find(name), name) for name in PROVINCES if name in text]
    return min(found)[1] if found else None


def provinces_named(text: str, words: Sequence[str] | None = None) -> set[str]:
    """Every province `text` names, in Chinese or English, as its Chinese name.

    Chinese names count only as whole words (jieba), alone or with their administrative suffix:
    a bare substring test finds 河北 in 黄河北岸, 海南 in 上海南站 and 山西 in 中山西路.
    `words`: jieba's words of `text`, when already cut.
    """
    found = {name for name, english in _ENGLISH.items() if english.search(text)}
    if any(name in text for name in PROVINCES):
        if words is None:
            import jieba

            words = jieba.lcut(text)
        for word in words:
            for name in PROVINCES:
                rest = word[len(name) :] if word.startswith(name) else None
                if rest is not None and (not rest or rest.startswith(_SUFFIXES)):
                    found.add(name)
    return found


def years_named(text: str) -> set[int]:
    """Every year `text` names; a range (2024—2028年) names each year in it."""
    years: set[int] = set()
    for first, last in _YEAR_RANGE.findall(text):
        start, end = int(first), int(last or first)
        if start <= end <= start + 30:
            years.update(range(start, end + 1))
        else:
            years.update({start, end})
    return years


_CN_YEAR = re.compile(r"([一二三四五六七八九〇○零]{4})年")
_CN_DIGIT = {ch: str(i) for i, ch in enumerate("〇一二三四五六七八九")} | {"○": "0", "零": "0"}
# Years a text names relative to its own date.
_RELATIVE = {"前年": -2, "去年": -1, "今年": 0, "明年": 1, "本年": 0, "上年": -1}


# A year named only to compare with (比1996年增长20%, 较上年, 同1996年相比) is not the year a
# passage gives figures of: the report of 1997 that compares with 1996 does not answer a question
# about 1996.
_COMPARED = re.compile(r"(?:[比较]|同|与)(?:(?:19|20)\d\d|上|去|前)年(?:同期)?(?:相比)?")


def years_stated(text: str, date: str) -> set[int]:
    """The years a passage states: written in any width (１９９７), in Chinese numerals
    (一九九七年), or relative to its article's date (去年 in a 1998 article is 1997); a year
    named only to compare with is not stated."""
    text = _COMPARED.sub("", unicodedata.normalize("NFKC", text))
    years = years_named(text)
    for numerals in _CN_YEAR.findall(text):
        years.add(int("".join(_CN_DIGIT[ch] for ch in numerals)))
    if date[:4].isdigit():
        years.update(int(date[:4]) + shift for word, shift in _RELATIVE.items() if word in text)
    return years
