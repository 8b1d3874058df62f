"""Places and years a text names: how articles get their region, and how questions are matched
to the articles about the place or time they ask about.

The gazetteer is China's provincial-level divisions with their usual English spellings, so an
English question about "Ningxia" finds the article whose metadata says 宁夏. It is a list of the
country's divisions, not of the places in one bulletin.
"""

from __future__ import annotations

import re

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
# A year of this century or the last, alone or as a range such as 2024—2028.
_YEAR_RANGE = re.compile(r"(?<!\d)((?:19|20)\d\d)(?:\s*[—–\-~至到]\s*((?:19|20)\d\d))?(?!\d)")


def first_province(text: str) -> str | None:
    """The province named first in `text` (Chinese names), or None."""
    found = [(text.find(name), name) for name in PROVINCES if name in text]
    return min(found)[1] if found else None


def provinces_named(text: str) -> set[str]:
    """Every province `text` names, in Chinese or English, as its Chinese name."""
    return {name for name, english in _ENGLISH.items() if name in text or english.search(text)}


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
