"""The patterns that tell a headline, byline, dateline or credit from a paragraph."""

from __future__ import annotations

import pytest

from rag.index.lexical import tokenize
from rag.ingest import heads


@pytest.mark.parametrize(
    ("paragraph", "dateline"),
    [
        ("本报北京１月１日讯中华全国总工会今日发出", "本报北京１月１日讯"),
        (
            "新华社贵阳１２月３１日电（记者刘子富）中共中央政治局委员",
            "新华社贵阳１２月３１日电（记者刘子富）",
        ),
        ("据新华社北京１２月３０日电西藏自治区政府副主席", "据新华社北京１２月３０日电"),
        (
            "本报蚌埠１月１日电记者黄振中、白剑峰报道：新年的钟声",
            "本报蚌埠１月１日电记者黄振中、白剑峰报道：",
        ),
        (
            "新华社北京十二月三十一日电（中央人民广播电台记者刘振英）今天",
            "新华社北京十二月三十一日电（中央人民广播电台记者刘振英）",
        ),
        ("本报讯 记者齐旭报道：1月24日，北京市人民政府印发", "本报讯 记者齐旭报道："),
        ("本报讯 近日，宁夏回族自治区工业和信息化工作会议", "本报讯"),
        ("记者从日前召开的2024年重庆市工业和信息化工作会议上了解到", ""),
        ("本报记者何加正报道了这件事。", ""),
    ],
)
def test_dateline(paragraph, dateline):
    assert paragraph[: heads.dateline_length(paragraph)] == dateline


@pytest.mark.parametrize(
    ("text", "bulletin_date", "date"),
    [
        ("新华社北京１２月３１日电", "1998-01", "1997-12-31"),
        ("本报北京１月９日讯", "1998-01", "1998-01-09"),
        ("新华社北京十二月三十一日电", "1998-01", "1997-12-31"),
        ("１９９７年１２月３１日子夜", "1998-01", "1997-12-31"),
        ("1月24日，北京市人民政府印发", "2024-01", "2024-01-24"),
        ("本报讯", "1998-01", None),
        ("１３月４０日", "1998-01", None),
    ],
)
def test_dateline_date(text, bulletin_date, date):
    assert heads.dateline_date(text, bulletin_date) == date


def test_lines_by_role():
    assert heads.heading_like("北京举行新年音乐会")
    assert not heads.heading_like("李鹏说，明天就是元旦。")
    assert not heads.heading_like("（新华社记者兰红光摄）")  # a credit, not a headline
    assert heads.PHOTO_CREDIT.match("（附图片１张）") and heads.PHOTO_CREDIT.match("（传真照片）")
    assert heads.PHOTO_MARKER.search("挂起红灯迎新年（图片）")
    assert heads.is_byline("本报记者 吴丽琳") and heads.is_byline("本报驻埃及记者朱梦魁")
    assert heads.is_byline("中共中央总书记、国家主席江泽民")
    assert heads.is_author_name("姚彩霞") and not heads.is_author_name("北京举行新年音乐会")
    assert heads.closes_article("谢谢！（新华社北京１２月３１日电）")
    assert heads.closes_article("超计划一百吨。（杜中武孙传刚）")
    assert not heads.closes_article("２１５家正在施工停产治理。")
    for heading in ("第五章奖励与惩罚", "一、总则", "原因之二：设施损耗高", "宗教界（６０人）"):
        assert heads.SECTION_NUMBER.search(heading), heading
    assert not heads.SECTION_NUMBER.search("北京举行新年音乐会")
    assert heads.LAYOUT_MARKER.match("＊＊＊") and heads.LAYOUT_MARKER.match("（Ａ、Ｂ）")


def test_credits_and_what_only_looks_like_one():
    assert heads.is_credit_line("（通宣）") and heads.is_credit_line(
        "（作者为国家审计署办公厅主任）"
    )
    for not_credit in (
        "（Ａ、Ｂ）",
        "（一九九七年十二月三十一日）",
        "（全文见第四版）",
        "（见下图）",
    ):
        assert not heads.is_credit_line(not_credit), not_credit
    assert not heads.is_credit_line("（１９９８年１月２２日政协第八届全国委员会常务委员会通过）")
    assert not heads.is_credit_line("（２９岁的田泳是重庆市人。毕业后南下深圳工作至今。）")
    assert not heads.closes_article("并签上了自己的名字。（见下图）")
    assert heads.closes_article("拍卖业正在逐步走向规范。（马丹妮）")


def test_photo_text():
    assert heads.is_photo_text("图为满载港澳货物的货船通过船闸驶往南宁。")
    assert heads.is_photo_text("压题照片为哥斯达黎加咖啡园。（本报加拉加斯电）")
    assert heads.is_photo_text("邓风华领回光荣牌时的情景。（张治平安少兵摄影报道）")
    assert not heads.is_photo_text("拍卖业正在逐步走向规范。（马丹妮）")


def test_a_lead_says_when_early():
    assert heads.opens_with_time("第三届美洲国家能源部长会议１５日上午在委内瑞拉首都开幕。")
    assert heads.opens_with_time(
        "北京城市合作银行综合业务网络系统中的储蓄通存通兑系统近日全面开通。"
    )
    assert heads.opens_with_time("七年来，浦东版图面积扩大了十一平方公里。")
    assert not heads.opens_with_time("她说，目前香港投资环境良好。去年１０月香港股市出现动荡。")


def test_headline_marks_names_and_digests():
    assert heads.asks_or_exclaims("环球虎年？（附图片１张）")
    assert heads.asks_or_exclaims("拜年变了味，当刹！")
    assert not heads.asks_or_exclaims("他说：好！") and not heads.asks_or_exclaims("真好。真好！")
    assert heads.is_personal_name("马俊峰") and heads.is_personal_name("南宫品")
    assert not heads.is_personal_name("旅游摄影") and not heads.is_personal_name("图片新闻")
    assert heads.DIGEST.search("———联合召开话剧发展研讨会发言摘要")
    assert heads.DIGEST.search("读者来信选登") and not heads.DIGEST.search("内容摘要")


def test_numbers_as_people_type_them_match_as_printed():
    assert set(tokenize("1997年增长56.8%", "bigram")) == set(
        tokenize("１９９７年增长５６．８％", "bigram")
    )
    assert "1139" in tokenize("已有１１３９家完成治理任务", "bigram")
