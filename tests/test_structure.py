"""Parsing the real bulletin into articles, sections and paragraphs, and chunking it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.documents import Bulletin, ParsedBulletin, Passage, Span
from rag.index.build import passages_of
from rag.ingest.accounting import coverage
from rag.ingest.chunk import split_sentences
from rag.ingest.load import load_bulletin
from rag.ingest.structure import parse_bulletin
from rag.ingest.tokens import count_tokens, get_encoding
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO

PAGE_TITLE = "2024年地方重点工作解读"
HEADLINES = (
    "重庆：以数字化推动工业经济提质增效",
    "北京将建设具有全球影响力的商业航天创新发展高地",
    "宁夏规上工业增加值十年来首次实现两位数增长",
    "四川进一步加大发展光伏产业力度",
)
SECTIONS = (
    "加快打造“33618”现代制造业集群体系",
    "构建“产业大脑+未来工厂”核心场景",
    "迭代优化产业空间布局“一张图”",
)
# (article, section or None, text before the cut, text after it)
JOINS = (
    (1, SECTIONS[0], "重点产业链高质量发展行", "动，一体推进稳链强链"),
    (1, SECTIONS[0], "推动企业集聚、", "项目集合、产业集群、要素集约"),
    (1, SECTIONS[1], "深化“一链一网一", "平台”部署，构建"),
    (1, SECTIONS[1], "人工智能产业高质量发展行", "动，推动场景数字化"),
    (1, SECTIONS[2], "积极承接争", "取大型成套装备"),
    (1, SECTIONS[2], "促进区域协同。深入", "实施先进制造业发展“渝西跨越计划”"),
    (2, "", "加快巨型星座组网", "运营，构建空间基础设施。"),
    (3, "", "要坚持党对", "工业经济的绝对领导"),
    (4, "", "光伏", "产业发展空间仍然巨大。"),
)
PULL_QUOTES = (
    "实施未来产业和高成长性产业发展行动，细化明确全市新质生产力培育方向。",
    "统筹推进数字产业补链成群，持续壮大数字经济核心产业规模，数字经济核心产业增加值增长5%。",
    "积极承接东部地区、沿江地区产业转移，对接争取重大项目落地，推动区域产业协同走深走实。",
)


@pytest.fixture(scope="module")
def bulletin() -> Bulletin:
    return load_bulletin(BULLETIN, REPO)


@pytest.fixture(scope="module")
def parsed(bulletin: Bulletin) -> ParsedBulletin:
    return parse_bulletin(bulletin)


def _synthetic(text: str, date: str = "2024-03") -> Bulletin:
    return Bulletin("synthetic", "synthetic.txt", text, "t", "zh", date, "0" * 64)


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _strip_ws(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- the real bulletin -------------------------------------------------------------------------


def test_articles_headlines_bylines_regions_dates(parsed):
    articles = parsed.articles
    assert [a.number for a in articles] == [1, 2, 3, 4]
    assert [a.headline for a in articles] == list(HEADLINES)
    assert [a.byline for a in articles] == [
        "本报记者 吴丽琳",
        "本报讯 记者齐旭报道",
        "本报讯",
        "本报讯",
    ]
    assert [a.region for a in articles] == ["重庆", "北京", "宁夏", "四川"]
    assert [a.date for a in articles] == ["2024-01", "2024-01-24", "2024-01", "2024-01-22"]
    assert [len(a.paragraphs) for a in articles] == [12, 8, 3, 3]


def test_headline_spans_point_at_headlines(parsed):
    text = parsed.bulletin.text
    for article in parsed.articles:
        span = article.headline_span
        assert text[span.start : span.end] == article.headline


def test_paragraph_text_is_its_source_spans(parsed):
    text = parsed.bulletin.text
    for article in parsed.articles:
        assert [p.number for p in article.paragraphs] == list(range(1, len(article.paragraphs) + 1))
        for p in article.paragraphs:
            assert p.text == "".join(text[s.start : s.end] for s in p.spans)
            assert p.text.strip() == p.text
            # Only the first paragraph spans lines: it reads the head down to the lead.
            assert "\n" not in p.text or p.number == 1


def test_chongqing_sections_in_reading_order(parsed):
    chongqing = parsed.articles[0]
    by_section: dict[str, list[str]] = {}
    for p in chongqing.paragraphs:
        by_section.setdefault(p.section, []).append(p.text)
    assert list(by_section) == ["", *SECTIONS]
    openings = {section: [t[:4] for t in texts] for section, texts in by_section.items()}
    assert openings == {
        "": ["2024"],
        SECTIONS[0]: ["2023", "一是补齐", "二是健全", "三是落实"],
        SECTIONS[1]: ["当前，以", "一方面，", "另一方面", "此外，推"],
        SECTIONS[2]: ["自主可控", "首先，助", "其次，按"],
    }
    # The other articles have no sub-headings.
    for article in parsed.articles[1:]:
        assert {p.section for p in article.paragraphs} == {""}


def test_text_after_the_column_break_returns_to_its_section(parsed):
    paragraphs = parsed.articles[0].paragraphs
    third = [p for p in paragraphs if p.text.startswith("三是落实闭环机制")]
    besides = [p for p in paragraphs if p.text.startswith("此外，推动数字化治理")]
    assert len(third) == 1 and third[0].section == SECTIONS[0]
    assert len(besides) == 1 and besides[0].section == SECTIONS[1]


@pytest.mark.parametrize(("article", "section", "left", "right"), JOINS)
def test_cut_paragraph_is_joined(parsed, article, section, left, right):
    joined = left + right
    assert joined not in parsed.bulletin.text  # the source really is cut here
    holders = [(a.number, p) for a in parsed.articles for p in a.paragraphs if joined in p.text]
    assert len(holders) == 1, f"{joined!r} is in {len(holders)} paragraphs"
    number, paragraph = holders[0]
    assert number == article
    assert paragraph.section == section
    assert len(paragraph.spans) >= 2


def test_repairs_are_the_nine_joins_and_three_pull_quotes(parsed):
    text = parsed.bulletin.text
    joins = [r for r in parsed.repairs if r.kind == "join"]
    drops = [r for r in parsed.repairs if r.kind == "drop_pull_quote"]
    assert len(joins) == len(JOINS)
    assert len(drops) == len(PULL_QUOTES)
    assert len(parsed.repairs) == len(JOINS) + len(PULL_QUOTES)
    found = set()
    for r in joins:
        first, second = r.spans
        found.add((r.article, text[first.start : first.end], text[second.start : second.end]))
    for article, _, left, right in JOINS:
        assert any(a == article and f.endswith(left) and s.startswith(right) for a, f, s in found)
    assert sorted(text[r.spans[0].start : r.spans[0].end] for r in drops) == sorted(PULL_QUOTES)
    assert {r.article for r in drops} == {1}


@pytest.mark.parametrize("quote", PULL_QUOTES)
def test_pull_quote_is_dropped(parsed, quote):
    text = parsed.bulletin.text
    block_at = text.index(f"\n{quote}\n") + 1
    block = Span(block_at, block_at + len(quote))
    paragraphs = [p for a in parsed.articles for p in a.paragraphs]
    assert all(p.text != quote for p in paragraphs)
    # Kept once where the body says it (verbatim or not), never a second time from the quote.
    all_text = "\n".join(p.text for p in paragraphs)
    assert all_text.count(quote) == text.count(quote) - 1
    for p in paragraphs:
        assert not any(_overlaps(s, block) for s in p.spans), p.text[:20]


def test_everything_outside_paragraphs_is_section_heading_or_pull_quote(parsed):
    """Each character is read at most once, and what is not read is labelled: the section
    headings (kept as each paragraph's section) and the pull quotes (dropped duplicates)."""
    text = parsed.bulletin.text
    owner = [0] * len(text)
    spans = [s for a in parsed.articles for p in a.paragraphs for s in p.spans]
    spans += [r.spans[0] for r in parsed.repairs if r.kind == "drop_pull_quote"]
    for span in spans:
        for i in range(span.start, span.end):
            owner[i] += 1
    assert max(owner) == 1, "a character is read twice"
    unread = "".join(ch if owner[i] == 0 else "\n" for i, ch in enumerate(text))
    leftovers = sorted(line.strip() for line in unread.split("\n") if line.strip())
    assert leftovers == sorted(SECTIONS)
    labelled = {text[lab.span.start : lab.span.end] for lab in parsed.labels}
    assert set(leftovers) <= labelled


def test_the_head_is_read_in_the_first_paragraph_only(parsed):
    furniture = [*HEADLINES, PAGE_TITLE, "本报记者", "吴丽琳", "记者齐旭报道"]
    for article in parsed.articles:
        for p in article.paragraphs[1:]:
            for item in furniture:
                assert item not in p.text, f"{item!r} in ¶{p.number} of article {article.number}"
    leads = [a.paragraphs[0].text for a in parsed.articles]
    assert [lead.split("\n")[0] for lead in leads] == [PAGE_TITLE, *HEADLINES[1:]]
    assert [lead.split("\n")[-1][:6] for lead in leads] == [
        "记者从日前召",
        "本报讯 记者",
        "本报讯 近日",
        "本报讯 1月",
    ]
    labels = {
        (lab.label, parsed.bulletin.text[lab.span.start : lab.span.end]) for lab in parsed.labels
    }
    assert {("kicker", PAGE_TITLE), ("byline", "本报记者 吴丽琳")} <= labels
    assert {("headline", h) for h in HEADLINES} <= labels
    assert ("dateline", "本报讯 记者齐旭报道：") in labels


# --- synthetic bulletins -------------------------------------------------------------------------


def test_no_headline_or_byline_still_yields_paragraphs():
    text = "今年以来，各地加快推进产业升级，成效明显。\n\n下一步，将继续推动重点项目建设。\n"
    parsed = parse_bulletin(_synthetic(text))
    assert len(parsed.articles) == 1
    article = parsed.articles[0]
    assert article.headline == ""
    assert [p.text for p in article.paragraphs] == [
        "今年以来，各地加快推进产业升级，成效明显。",
        "下一步，将继续推动重点项目建设。",
    ]
    assert article.date == "2024-03"


def test_short_first_line_without_byline_is_the_headline():
    text = (
        "产业动态\n今年以来，各地加快推进产业升级，成效明显。\n下一步，将继续推动重点项目建设。\n"
    )
    parsed = parse_bulletin(_synthetic(text))
    assert len(parsed.articles) == 1
    article = parsed.articles[0]
    assert article.headline == "产业动态"
    assert [p.text[:4] for p in article.paragraphs] == ["产业动态", "下一步，"]


def test_line_cut_mid_sentence_is_joined_with_the_next():
    text = (
        "江苏推进智能制造\n本报记者 张三\n"
        "江苏省日前出台方案，推动制造业企业开展智能化改\n"
        "造和数字化转型，力争三年内覆盖规上企业。\n"
        "方案还提出，培育一批智能工厂。\n"
    )
    parsed = parse_bulletin(_synthetic(text))
    (article,) = parsed.articles
    assert article.headline == "江苏推进智能制造"
    assert article.byline == "本报记者 张三"
    assert article.region == "江苏"
    first, second = article.paragraphs
    assert first.text == (
        "江苏推进智能制造\n本报记者 张三\n"
        "江苏省日前出台方案，推动制造业企业开展智能化改造和数字化转型，力争三年内覆盖规上企业。"
    )
    assert len(first.spans) == 2
    assert "".join(text[s.start : s.end] for s in first.spans) == first.text
    assert second.text == "方案还提出，培育一批智能工厂。"
    (join,) = parsed.repairs
    # The join is of the two body lines; the first paragraph's span runs from the headline.
    assert join.kind == "join" and join.spans[1] == first.spans[1]
    assert first.spans[0].start == 0 and text[join.spans[0].start :].startswith("江苏省日前")


def test_byline_prefix_date_and_region_come_from_the_lead():
    text = (
        "新能源汽车产量再创新高\n"
        "本报讯 记者李四报道：3月5日，广东省发布数据，全省新能源汽车产量同比增长三成。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="2024-03"))
    (article,) = parsed.articles
    assert article.byline == "本报讯 记者李四报道"
    assert article.region == "广东"
    assert article.date == "2024-03-05"
    assert article.dateline == "本报讯 记者李四报道："
    (paragraph,) = article.paragraphs
    assert paragraph.text.startswith("新能源汽车产量再创新高\n本报讯 记者李四报道：3月5日，广东省")
    (span,) = paragraph.spans
    assert text[span.start : span.end] == paragraph.text


def test_byline_alone_on_its_line():
    text = (
        "新能源汽车产量再创新高\n本报讯\n3月5日，广东省发布数据，全省新能源汽车产量同比增长三成。\n"
    )
    parsed = parse_bulletin(_synthetic(text))
    (article,) = parsed.articles
    assert article.byline == "本报讯"
    assert [p.text.split("\n")[-1][:5] for p in article.paragraphs] == ["3月5日，"]


def test_a_brief_without_dateline_opens_after_the_credit_closing_the_report_before():
    text = (
        "翰海秋拍成交额超九千万\n\n"
        "历时４天的翰海秋季拍卖会总成交额９２９３万元，行家认为，"
        "国内拍卖业正在逐步走向规范。（马丹妮）\n\n"
        "北京华通包装材料公司推出纸浆模塑生产线，由制浆、成型、消毒等系统组成，"
        "日产１０万件，所生产的纸制餐具无毒无味。\n\n"
        "（通宣）\n\n"
        "湖北省矿产开发总公司研制的新型铸造涂料日前通过国家鉴定，"
        "鉴定委员会认为，它可提高铸件一级成品率。\n\n"
        "编后：这样的好产品多些才好，消费者盼着更多企业把质量放在第一位，不要只顾眼前。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    # The afterword (编后) after the last credit is the last brief's, not a brief of its own.
    assert [a.paragraphs[-1].text[:4] for a in parsed.articles] == [
        "翰海秋拍",
        "北京华通",
        "编后：这",
    ]
    assert [len(a.paragraphs) for a in parsed.articles] == [1, 1, 2]
    assert [a.headline for a in parsed.articles] == ["翰海秋拍成交额超九千万", "", ""]
    assert coverage(parsed).unaccounted == ()


def test_a_bracketed_date_or_note_closes_no_report():
    text = (
        "新年讲话\n\n（一九九七年十二月三十一日）\n\n"
        "１２月３１日，国家主席发表１９９８年新年讲话，祝全国各族人民新年快乐，万事如意。\n\n"
        "他在讲话上用英文写下了祝福，并签上了自己的名字，大家都很高兴。（见下图）\n\n"
        "安南１２月３１日说，对新的一年即将降生的中国小老虎们，他要表示特别的欢迎和祝贺。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    assert len(parsed.articles) == 1


def test_a_brief_that_names_a_new_subject_opens_its_own_article():
    text = (
        "叶利钦重申不谋求连任\n\n"
        "本报莫斯科１月３０日电俄罗斯总统叶利钦今天再次重申，他将不参与２０００年总统大选。\n\n"
        "叶利钦１９９７年９月１日曾表示，他不打算在２０００年大选中谋求连任总统，此后多次重申。\n\n"
        "日本首相桥本龙太郎３０日晚正式任命众议院预算委员会委员长松永光为大藏大臣，接替三博。\n\n"
        "纽约股市２９日连续第四个交易日攀升，道琼斯３０种工业股票平均价格指数上升５７点，"
        "终盘收于７９７３点。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    # The second paragraph names 叶利钦 again: the same report. The next two name nothing of
    # it and say when at once: two briefs printed without headline.
    assert [len(a.paragraphs) for a in parsed.articles] == [2, 1, 1]
    assert [a.paragraphs[0].text[:4] for a in parsed.articles[1:]] == ["日本首相", "纽约股市"]


def test_a_signed_feature_does_not_break_on_a_new_subject():
    text = (
        "独联体：生存还是灭亡\n\n本报驻俄罗斯记者许宏治\n\n"
        "去年年底，俄罗斯外交部长普里马科夫在对一年来俄外交工作进行总结时指出了方向。\n\n"
        "乌克兰总统库奇马１２月２０日在基辅表示，乌方愿意参加经济联盟，但反对政治一体化。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    assert len(parsed.articles) == 1


def test_a_question_or_cry_signed_under_it_is_a_headline():
    text = (
        "俄罗斯之湖（油画）\n\n（列维坦）\n\n『诸事不宜』？\n\n邱金华\n\n"
        "年前，友人赠送一本新年历，设计、印刷均属上乘，大小老虎生气十足，初看时有点爱不释手。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    assert [a.headline for a in parsed.articles] == ["俄罗斯之湖（油画）", "『诸事不宜』？"]
    assert parsed.articles[1].byline == "邱金华"


def test_a_deck_between_headline_and_author_belongs_to_the_head():
    text = (
        "宏观经济理论实证化趋向\n\n郑超愚\n\n"
        "我国宏观经济理论研究重视实证分析，在理论体系方面取得了长足的进步，这是一个重要课题。\n\n"
        "关于价值观的学术争鸣\n\n"
        "改革开放使人们的生活方式发生了巨大变化，社会价值观念也处在急剧的变革之中，讨论十分活跃。\n\n"
        "马俊峰\n\n"
        "价值观的本质内容一种观点认为，价值是客体的性质与主体生存发展需要之间的一种满足关系。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    # The second headline would be a section heading of the signed essay above it, but the
    # author's name two lines under it says it opens an essay of its own.
    assert [a.headline for a in parsed.articles] == [
        "宏观经济理论实证化趋向",
        "关于价值观的学术争鸣",
    ]
    assert parsed.articles[1].byline == "马俊峰"
    assert parsed.articles[1].subtitle.startswith("改革开放")


def test_a_short_topic_is_no_author_under_a_deck():
    text = (
        "美容美发登门\n\n"
        "如果你准备参加重要的庆典、隆重的婚礼或去其它正式场合，可以请美容美发师登门服务。\n\n"
        "旅游摄影\n\n"
        "摄影师相随，一路走一路拍，最后，一部令新人满意的“新婚行”随之诞生，大家都很满意。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    assert [(a.headline, a.byline) for a in parsed.articles] == [
        ("美容美发登门", ""),
        ("旅游摄影", ""),
    ]


def test_a_poem_ends_where_a_title_and_its_author_stand_over_prose():
    text = (
        "春之歌\n\n鄂青子\n\n等着你\n\n我将嘴慢慢张开\n\n悄悄吻湿\n\n"
        "江峡大道\n\n李舟\n\n在三峡坝区，在长江的岸边，一条宽阔笔直的大道纵贯东西，这就是江峡大道。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    assert [a.headline for a in parsed.articles] == ["春之歌", "江峡大道"]


def test_a_digest_of_speeches_is_one_article():
    text = (
        "迎接新世纪铸造新辉煌\n\n"
        "———人民日报文艺部、光明日报文艺部、求是杂志文教部联合召开话剧发展研讨会发言摘要\n\n"
        "迎接更辉煌的新世纪\n\n中国文联副主席李默然\n\n"
        "近一个世纪以来，话剧始终和中国人民反帝、反封建的斗争联系在一起，成为时代的号角。\n\n"
        "繁荣军事戏剧创作\n\n总政话剧团团长郑振环\n\n"
        "军旅戏剧作为中国话剧事业的一个重要组成部分，长期以来，在部队建设中发挥了重要作用。\n\n"
        "伊朗抗议美国侵犯主权\n\n"
        "新华社德黑兰１月１５日电伊朗外交部今天召见瑞士驻伊朗大使，抗议美国侵犯伊朗主权。\n"
    )
    parsed = parse_bulletin(_synthetic(text, date="1998-01"))
    # Each speech's title and speaker are headings inside the digest; a datelined report ends it.
    assert [a.headline for a in parsed.articles] == ["迎接新世纪铸造新辉煌", "伊朗抗议美国侵犯主权"]
    assert coverage(parsed).unaccounted == ()


# --- passages: spans, budget, sentences ----------------------------------------------------------

BUDGETS = (16, 32, 64, 128, 256)
SENTENCE_END = re.compile(r"(?:(?:[。！？；!?;]+|…+)[”’」』）)》]*|\n+)$")


@pytest.fixture(scope="module")
def encoding():
    settings = Settings(root=REPO)
    return get_encoding(settings.tiktoken_encoding, settings.cache_dir)


@pytest.fixture(scope="module", params=BUDGETS)
def chunked(request, bulletin) -> tuple[int, ParsedBulletin, list[Passage]]:
    settings = Settings(root=REPO, chunk_tokens=request.param)
    (parsed,), passages = passages_of([bulletin], settings)
    return request.param, parsed, passages


def test_passage_spans_round_trip(chunked, bulletin):
    _, _, passages = chunked
    assert passages
    for p in passages:
        from_source = "".join(bulletin.text[s.start : s.end] for s in p.spans)
        assert _strip_ws(from_source) == _strip_ws(p.text), p.passage_id
        assert _strip_ws(p.text)
        assert p.source == "corpus/000_a1e9ce7368794dc6.txt"
    assert len({p.passage_id for p in passages}) == len(passages)


def test_passages_cover_each_paragraph_in_order(chunked):
    _, parsed, passages = chunked
    for article in parsed.articles:
        for paragraph in article.paragraphs:
            pieces = [
                p
                for p in passages
                if p.article == article.number and p.paragraph == paragraph.number
            ]
            assert "".join(p.text for p in pieces) == paragraph.text
            assert all(p.section == paragraph.section for p in pieces)


def test_passages_fit_the_token_budget(chunked, encoding):
    budget, _, passages = chunked
    for p in passages:
        assert count_tokens(p.text, encoding) <= budget, p.passage_id


def test_passages_stay_inside_their_article(chunked):
    _, parsed, passages = chunked
    articles = {a.number: a for a in parsed.articles}
    for p in passages:
        article = articles[p.article]
        assert p.headline == article.headline
        assert p.region == article.region and p.date == article.date
        paragraph = article.paragraphs[p.paragraph - 1]
        for span in p.spans:
            assert any(s.start <= span.start and span.end <= s.end for s in paragraph.spans)


def test_passages_end_at_sentence_ends(chunked, encoding):
    """A passage ends a sentence unless it ends its paragraph or cuts an over-long sentence."""
    budget, parsed, passages = chunked
    for article in parsed.articles:
        for paragraph in article.paragraphs:
            pieces = [
                p
                for p in passages
                if p.article == article.number and p.paragraph == paragraph.number
            ]
            sentences = split_sentences(paragraph.text)
            starts = {start for start, _ in sentences}
            ends = {end for _, end in sentences}
            offset = 0
            for piece in pieces[:-1]:
                begin, offset = offset, offset + len(piece.text)
                if offset in ends:
                    assert SENTENCE_END.search(piece.text), piece.passage_id
                    if begin in starts:
                        # Whole sentences, grouped greedily: the next one would not have fitted.
                        nxt = next(e for s, e in sentences if s == offset)
                        grown = paragraph.text[begin:nxt]
                        assert count_tokens(grown, encoding) > budget, piece.passage_id
                else:
                    cut = next(paragraph.text[s:e] for s, e in sentences if s < offset < e)
                    assert count_tokens(cut, encoding) > budget, piece.passage_id


def test_smaller_budget_gives_more_passages(bulletin):
    counts = []
    for budget in (32, 256):
        _, passages = passages_of([bulletin], Settings(root=REPO, chunk_tokens=budget))
        counts.append(len(passages))
    assert counts[0] > counts[1] >= sum([12, 8, 3, 3])


def test_source_outside_root_is_absolute(tmp_path):
    path = tmp_path / "elsewhere.txt"
    path.write_bytes(BULLETIN.read_bytes())
    loaded = load_bulletin(path, REPO)
    assert Path(loaded.source).is_absolute() and loaded.source == str(path.resolve())
