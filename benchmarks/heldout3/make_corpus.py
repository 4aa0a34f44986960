"""Write the six binary documents of the third held-out corpus (Yunmo Tea & Foods).

products/price_list.xlsx, products/tea_brewing_storage_zh.docx, products/spring_launch_2026_zh.pptx,
hr/hamburg_staff_handbook.docx, quality/food_safety_recall_zh.pdf and sales/wholesale_terms.pdf. The other corpus
files are plain text and committed as written. Run from the repository root:
    .venv/bin/python benchmarks/heldout3/make_corpus.py
The output is the same on every run (fixed document dates, zip entry timestamps and PDF creation date). The PDFs embed
WenQuanYi Micro Hei from the paperang-p2-fonts-cjk wheel (a dev dependency), so they have a text layer in Chinese.
"""

from __future__ import annotations

import importlib.util
import io
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
FIXED = datetime(2026, 3, 1, 9, 0, 0)
ZIP_DATE = (2026, 3, 1, 9, 0, 0)
# openpyxl stamps dcterms:modified with the time of saving; normalize_zip puts the fixed date back.
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")

NOT_EU = "not sold in the EU"
PRICES = [
    ("SKU", "Product", "产品名称", "Price CNY", "Price EUR", "Net weight", "Launch"),
    ("YM-LJ-250", "Yunxiu pre-Qingming Longjing gift box", "「云岫」明前龙井礼盒", 1280, 169, "250 g", "2026-03"),
    ("YM-AB-100", "Anji white tea tin", "安吉白茶罐装", 268, 35, "100 g", "2024-04"),
    ("YM-RG-125", "Wuyi rock tea Rougui", "武夷岩茶·肉桂", 398, 52, "125 g", "2025-10"),
    ("YM-SY-100", "Songyan smoked black tea", "「松烟」烟熏红茶", 168, 24, "100 g", "2026-04"),
    ("YM-GH-08", "Osmanthus Longjing pastry, 8 pieces", "桂花龙井酥（8枚装）", 68, NOT_EU, "320 g", "2026-03"),
    ("YM-MC-06", "Lotus seed mooncake box, 6 pieces", "莲蓉月饼礼盒（6枚装）", 198, NOT_EU, "480 g", "2023-08"),
    ("YM-OC-10", "Osmanthus cake, 10 pieces", "桂花糕（10枚装）", 39, NOT_EU, "300 g", "2019-09"),
    ("YM-TS-01", "Celadon tea set, 6 cups", "青瓷茶具套装（6杯）", 880, 119, "1.6 kg", "2025-05"),
]

CUSTOM = [
    ("Option", "定制选项", "Min. quantity (boxes)", "Extra price CNY per box", "Lead time (days)"),
    ("Logo printing on the box", "礼盒印制企业标志", 50, 15, 12),
    ("Name engraving on the tin", "茶罐刻字", 20, 30, 7),
    ("Custom box design", "专属礼盒设计", 500, 45, 25),
]

PRICE_NOTE = (
    "Prices valid from 1 March 2026, including VAT (13% in China, 7% in Germany for tea and food). All figures are "
    "invented for testing. 价格自2026年3月1日起生效，含增值税。Wholesale prices for European retailers: see the "
    "wholesale terms. 定制礼盒不退不换。"
)

BREWING_ZH = [
    ("h", "云墨茶叶冲泡与储存指南"),
    ("p", "本指南供门店茶艺师和顾客参考，适用于云墨在售的茶叶产品。文中数据均为测试用途虚构。"),
    ("h", "一、冲泡参数"),
    ("p", "下表为盖碗冲泡的推荐参数，投茶量按每150毫升水计算。"),
    ("table", None),
    ("h", "二、储存"),
    (
        "p",
        "绿茶开封后应密封放入冰箱冷藏，温度保持在0至5℃，因为绿茶中的叶绿素和茶多酚在常温下容易氧化，"
        "使汤色变黄、香气变淡。岩茶和红茶可常温避光保存，不必冷藏。",
    ),
    (
        "p",
        "从冰箱取出的茶叶应先放置30分钟回温再开袋，以免水汽凝结使茶叶受潮。家中存茶环境的相对湿度应低于60%。"
        "开封后的茶叶建议在2个月内饮用完毕。",
    ),
    ("h", "三、用水与茶艺课程"),
    (
        "p",
        "推荐使用总溶解固体低于50毫克/升的软水，门店统一使用纯净水冲泡。金叶及以上会员的免费茶艺课程"
        "由首席茶艺师许清禾在杭州良渚总部授课，每期限15人。",
    ),
]

BREWING_TABLE = [
    ("茶类", "代表产品", "水温", "投茶量", "第一泡时间", "可续泡次数"),
    ("绿茶", "西湖龙井", "80℃", "3克", "90秒", "3次"),
    ("白茶", "安吉白茶", "85℃", "4克", "2分钟", "4次"),
    ("乌龙茶", "武夷岩茶·肉桂", "100℃", "8克", "45秒", "7次"),
    ("红茶", "「松烟」烟熏红茶", "90℃", "5克", "3分钟", "5次"),
]

LAUNCH_SLIDES = [
    ("云墨茶食2026春季新品发布", ["2026年3月18日 · 杭州良渚总部", "文中数据均为测试用途虚构"]),
    (
        "「云岫」明前龙井礼盒",
        [
            "250克，采自杭州龙井村核心产区",
            "全球限量3000盒，每盒附编号证书",
            "首发特惠价1180元（3月25日至4月7日）",
            "包装由上海半山设计工作室设计",
        ],
    ),
    (
        "「松烟」烟熏红茶",
        ["产自福建武夷山茶园", "采用松木烟熏工艺，熏制时间为12小时", "100克罐装，4月8日上市"],
    ),
    (
        "桂花龙井酥",
        ["嘉兴工厂出品，8枚装", "保质期45天", "每枚含龙井茶粉2克", "首批生产2万盒"],
    ),
    (
        "渠道与目标",
        [
            "天猫旗舰店3月25日首发",
            "42家直营门店4月1日同步上架",
            "春季新品目标销售额2400万元",
            "新品项目负责人：产品经理林若溪",
        ],
    ),
]

HAMBURG_INTRO = (
    "This handbook applies to employees of Yunmo Tea Europe GmbH in Hamburg (office and warehouse). Employees in "
    "Hangzhou, Jiaxing and the tea gardens follow the Chinese attendance and leave rules. All figures are invented "
    "for testing."
)

HAMBURG_SECTIONS = [
    (
        "Working hours",
        "Full-time work is 39 hours a week. Core hours are 10:00 to 15:00, Monday to Friday. Office employees may "
        "work from home up to 2 days a week; warehouse staff work on site.",
    ),
    (
        "Leave and sickness",
        "Full-time employees get 28 days of annual leave a year. Up to 5 unused days carry over until 31 March of "
        "the next year. Employees who are ill call their manager before 9:00 and bring a doctor's note from the "
        "third day of illness.",
    ),
    (
        "Trips to China",
        "Trips to Hangzhou, the Jiaxing plant or the tea gardens need the approval of the managing director at least "
        "4 weeks before departure. Flights longer than 8 hours may be booked in premium economy. The daily allowance "
        "in China is 52 EUR. Hotel limits per night:",
    ),
    (
        "Benefits",
        "Each employee receives 250 g of Yunmo tea a month and a 30% discount in the EU web shop. The training "
        "budget is 1,200 EUR per employee per year. The company pays the job ticket for public transport in full.",
    ),
]

HAMBURG_HOTELS = [
    ("City", "Hotel limit per night"),
    ("Hangzhou", "650 CNY"),
    ("Shanghai", "800 CNY"),
    ("Anji, Wuyishan", "400 CNY"),
    ("Hamburg (visitors from China)", "130 EUR"),
]

RECALL_ZH = [
    ("h", "云墨茶食食品安全与产品召回程序"),
    ("p", "本程序适用于嘉兴糕点工厂和杭州茶叶分装车间生产的全部产品。文中数据均为测试用途虚构。"),
    ("h", "一、原料与成品检验"),
    (
        "p",
        "每批鲜叶在收购时抽取3份样品检测农药残留。每批成品出厂前检测水分，茶叶成品水分不得超过6.5%。"
        "每批成品均须留样，留样保存至保质期满后6个月。",
    ),
    ("h", "二、召回分级"),
    ("table", None),
    ("h", "三、职责"),
    (
        "p",
        "召回小组组长由质量总监方一鸣担任。召回信息的对外发布统一由品牌公关部负责，其他部门和个人不得自行对外发布。",
    ),
    ("h", "四、投诉与报告"),
    (
        "p",
        "涉及食品安全的消费者投诉，质量部须在2小时内联系消费者。召回结束后10个工作日内，"
        "向所在地市场监督管理部门提交召回总结报告。每年至少组织2次召回演练。",
    ),
]

RECALL_TABLE = [
    ("级别", "情形", "启动时限", "完成时限"),
    ("一级召回", "已经或可能造成严重健康损害", "12小时内", "7个工作日内"),
    ("二级召回", "可能造成一般健康损害", "24小时内", "15个工作日内"),
    ("三级召回", "标签不符合规定，不会造成健康损害", "72小时内", "25个工作日内"),
]

WHOLESALE = [
    ("h", "Yunmo Tea Europe GmbH: wholesale terms for retailers 2026"),
    (
        "p",
        "These terms apply to shops, cafés and restaurants in the EU that buy from Yunmo Tea Europe GmbH in Hamburg. "
        "All figures are invented for testing.",
    ),
    ("h", "Orders"),
    (
        "p",
        "The first order must be worth at least 300 EUR; repeat orders at least 150 EUR. Teas are sold in cartons of "
        "12 tins. Orders confirmed before 11:00 leave the Hamburg warehouse within 3 business days.",
    ),
    ("h", "Volume discounts"),
    ("p", "The discount depends on the net value of a single order:"),
    ("table", None),
    ("h", "Payment"),
    (
        "p",
        "The first order is paid in advance. Later invoices are due 30 days after the invoice date, and a 2% "
        "discount applies when an invoice is paid within 10 days.",
    ),
    ("h", "Claims"),
    (
        "p",
        "Report damaged or missing items within 7 days of delivery. Unsold goods cannot be returned. Tea delivered "
        "to retailers has a best-before date at least 12 months after delivery.",
    ),
    ("h", "Samples and contact"),
    (
        "p",
        "Each retailer receives up to 5 free sample tins a year and, in its first year, one free tasting session "
        "for its staff. Key account manager: Lena Vogt, wholesale@yunmo.example, +49 40 5550 3195.",
    ),
]

WHOLESALE_TABLE = [
    ("Net order value", "Discount"),
    ("150 to 999 EUR", "none"),
    ("1,000 to 2,999 EUR", "8%"),
    ("3,000 to 9,999 EUR", "12%"),
    ("10,000 EUR and more", "15%"),
]


def normalize_zip(path: Path) -> None:
    """Rewrite an OOXML package with fixed entry timestamps and modified date so the bytes do not change."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    stamp = FIXED.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    entries = [
        (name, MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", data) if name == "docProps/core.xml" else data)
        for name, data in entries
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())


def write_price_list(path: Path) -> None:
    """Two sheets: prices in CNY and EUR, and corporate gift options."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Prices"
    for row in PRICES:
        sheet.append(row)
    sheet.append(())
    sheet.append((PRICE_NOTE,))
    custom = book.create_sheet("Corporate gifts")
    for row in CUSTOM:
        custom.append(row)
    book.properties.created = book.properties.modified = FIXED
    book.properties.title = "Yunmo price list 2026"
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    normalize_zip(path)


def _docx_table(doc, rows) -> None:
    table = doc.add_table(rows=0, cols=len(rows[0]))
    for values in rows:
        for cell, value in zip(table.add_row().cells, values, strict=True):
            cell.text = value


def write_brewing_guide(path: Path) -> None:
    """A Chinese Word document: headings, paragraphs and a brewing table."""
    from docx import Document

    doc = Document()
    for kind, text in BREWING_ZH:
        if kind == "h":
            doc.add_heading(text, level=1)
        elif kind == "table":
            _docx_table(doc, BREWING_TABLE)
        else:
            doc.add_paragraph(text)
    doc.core_properties.created = doc.core_properties.modified = FIXED
    doc.core_properties.title = "云墨茶叶冲泡与储存指南"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    normalize_zip(path)


def write_hamburg_handbook(path: Path) -> None:
    """An English Word document with a hotel-limit table after the travel section."""
    from docx import Document

    doc = Document()
    doc.add_heading("Staff handbook: Yunmo Tea Europe, Hamburg", level=1)
    doc.add_paragraph(HAMBURG_INTRO)
    for title, text in HAMBURG_SECTIONS:
        doc.add_heading(title, level=2)
        doc.add_paragraph(text)
        if title == "Trips to China":
            _docx_table(doc, HAMBURG_HOTELS)
    doc.core_properties.created = doc.core_properties.modified = FIXED
    doc.core_properties.title = "Yunmo Hamburg staff handbook"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    normalize_zip(path)


def write_launch_slides(path: Path) -> None:
    """A Chinese PowerPoint deck: a title slide and four slides of bullets."""
    from pptx import Presentation

    deck = Presentation()
    for n, (title, lines) in enumerate(LAUNCH_SLIDES):
        slide = deck.slides.add_slide(deck.slide_layouts[0 if n == 0 else 1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
    deck.core_properties.created = deck.core_properties.modified = FIXED
    deck.core_properties.last_modified_by = "Yunmo"
    deck.core_properties.title = "云墨茶食2026春季新品发布"
    path.parent.mkdir(parents=True, exist_ok=True)
    deck.save(path)
    normalize_zip(path)


def _font_path() -> Path:
    spec = importlib.util.find_spec("paperang_p2_fonts_cjk")
    if spec is None:
        raise SystemExit("paperang-p2-fonts-cjk (dev dependency) is not installed: run make install")
    return Path(spec.submodule_search_locations[0]) / "fonts" / "wqy-microhei.ttc"


def write_pdf(path: Path, blocks, table, widths, title: str) -> None:
    """An A4 text-layer PDF of headings, paragraphs and one ruled table, in a CJK font."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED.replace(tzinfo=UTC))
    pdf.set_title(title)
    for style in ("", "B"):
        pdf.add_font("wqy", style=style, fname=str(_font_path()))
    pdf.add_page()
    for kind, text in blocks:
        if kind == "h":
            pdf.set_font("wqy", size=14)
            pdf.ln(2)
            pdf.multi_cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")
        elif kind == "table":
            pdf.set_font("wqy", size=10)
            pdf.ln(2)
            with pdf.table(col_widths=widths, width=sum(widths), align="LEFT") as grid:
                for values in table:
                    row = grid.row()
                    for value in values:
                        row.cell(value)
            pdf.ln(4)
        else:
            pdf.set_font("wqy", size=11)
            pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(pdf.output()))


def main() -> None:
    outputs = {
        CORPUS / "products" / "price_list.xlsx": write_price_list,
        CORPUS / "products" / "tea_brewing_storage_zh.docx": write_brewing_guide,
        CORPUS / "products" / "spring_launch_2026_zh.pptx": write_launch_slides,
        CORPUS / "hr" / "hamburg_staff_handbook.docx": write_hamburg_handbook,
        CORPUS / "quality" / "food_safety_recall_zh.pdf": lambda p: write_pdf(
            p, RECALL_ZH, RECALL_TABLE, (25, 75, 30, 35), "云墨茶食食品安全与产品召回程序"
        ),
        CORPUS / "sales" / "wholesale_terms.pdf": lambda p: write_pdf(
            p, WHOLESALE, WHOLESALE_TABLE, (60, 40), "Yunmo wholesale terms 2026"
        ),
    }
    for path, write in outputs.items():
        write(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
