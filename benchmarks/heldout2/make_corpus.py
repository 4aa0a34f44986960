"""Write the three binary documents of the second held-out corpus (Pellaro Cycles).

products/price_list.xlsx, hr/leave_policy_zh.docx and travel/travel_rules_ghent.docx. The other corpus files are
plain text and committed as written. Run from the repository root:
    .venv/bin/python benchmarks/heldout2/make_corpus.py
The output is the same on every run (fixed document dates and zip entry timestamps).
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
FIXED = datetime(2026, 3, 1, 9, 0, 0)
ZIP_DATE = (2026, 3, 1, 9, 0, 0)
# openpyxl stamps dcterms:modified with the time of saving; normalize_zip puts the fixed date back.
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")

PRICES = [
    ("SKU", "Product", "产品名称", "Price CNY", "Price EUR", "Colours", "Launch"),
    ("PC-S5-26", "Strada S5 city e-bike", "Strada S5 城市电助力车", 8999, 1799, "grey, sand", "2024-03"),
    ("PC-S7-26", "Strada S7 city e-bike", "Strada S7 城市电助力车", 12499, 2449, "grey, olive, black", "2025-04"),
    ("PC-K2-26", "Karg K2 cargo e-bike", "Karg K2 载物电助力车", 16800, 3290, "black", "2025-09"),
    ("PC-F1-26", "Plia F1 folding e-bike", "Plia F1 折叠电助力车", 6999, 1499, "white, red", "2023-06"),
    ("PC-B540", "Spare battery B540", "B540 备用电池", 3299, 569, "black", "2025-04"),
    ("PC-FC4", "Fast charger 4 A", "4A 快充充电器", 599, 109, "black", "2025-04"),
    ("PC-CS2", "K2 child seat with belt", "K2 儿童座椅", 899, 149, "grey", "2025-09"),
]

PLANS = [
    ("Plan", "服务计划", "Term (years)", "Price CNY", "Price EUR", "Covers"),
    ("RideCare 1", "一年畅骑保", 1, 399, 79, "Parts and labour for wear parts; one yearly service"),
    ("RideCare 3", "三年畅骑保", 3, 999, 189, "Parts and labour for wear parts; yearly service; theft cover"),
    ("BatteryPlus", "电池延保", 2, 699, 119, "Extends the battery warranty; replacement below 70% capacity"),
]

PRICE_NOTE = (
    "Prices valid from 1 March 2026, including VAT (13% in China, 21% in Belgium). All figures are invented for "
    "testing. 价格自2026年3月1日起生效，含增值税。Dealers buy at 25% off list price. Fleet orders of 10 or more "
    "bikes get 8% off list price. 企业客户批量采购须与销售部签订框架协议。"
)

LEAVE_ZH = [
    ("h", "佩拉罗员工休假管理规定（苏州员工）"),
    ("p", "本规定适用于苏州总部及装配车间的正式员工；根特办公室员工适用比利时当地合同。文中数据均为测试用途虚构。"),
    ("h", "一、年假"),
    (
        "p",
        "员工累计工作满1年不满5年的，年假为6天；满5年不满10年的，年假为10天；满10年及以上的，年假为15天。"
        "试用期为2个月（经理及以上为6个月），试用期内不享受年假。当年未休完的年假可顺延至次年6月30日，逾期作废。",
    ),
    ("h", "二、病假"),
    (
        "p",
        "每年病假前5天按全额工资发放，第6天起按基本工资的70%发放。连续病假超过3天的，须提交医院证明。"
        "装配车间员工因工受伤的，按工伤规定处理，不占用病假。",
    ),
    ("h", "三、婚假、产假、陪产假与育儿假"),
    (
        "p",
        "员工依法登记结婚的，享受婚假13天，须在登记后6个月内一次休完。女员工产假为158天，难产增加15天；"
        "男员工陪产假为20天，须在配偶生产后90天内休完。子女未满3周岁的员工，每年另有育儿假12天。",
    ),
    ("h", "四、请假审批"),
    (
        "p",
        "请假2天以内由直属主管审批；3天至7天由部门经理审批；超过7天由人力资源总监审批。"
        "年假须至少提前3个工作日在OA系统申请；病假可在当天上午9点前电话告知直属主管，事后3个工作日内补办手续。",
    ),
    ("h", "五、事假与调休"),
    (
        "p",
        "事假每年累计不超过8天，事假期间不发工资。工作日加班可申请调休，调休须在加班后2个月内使用；"
        "法定节假日加班按300%支付加班费，不安排调休。连续旷工3天的，按严重违纪处理。",
    ),
]

GHENT_INTRO = (
    "These rules apply to employees of the Ghent office (Pellaro Cycles Europe BV). Employees in Suzhou follow the "
    "Chinese travel policy. All figures are invented for testing."
)

GHENT_SECTIONS = [
    (
        "Booking",
        "Book flights and hotels through the travel desk at least 14 days before departure; later bookings need the "
        "approval of the managing director. Take the train for journeys under 5 hours. Flights are in economy class; "
        "on flights longer than 10 hours, premium economy is allowed for all staff.",
    ),
    ("Hotel limits per night", None),
    (
        "Daily allowance",
        "The daily allowance (per diem) for meals is 48 EUR in Europe and 55 EUR in China. When breakfast is included "
        "in the hotel price, the per diem is reduced by 10 EUR. Private car use is reimbursed at 0.43 EUR per "
        "kilometre, up to 500 km per trip.",
    ),
    (
        "Expense claims",
        "Submit expense claims within 30 days of returning, with a receipt for every item above 20 EUR. Claims "
        "submitted after 90 days are not paid. Approved claims are paid with the next monthly salary. Trips to China "
        "need a visa application at least 6 weeks before departure; the visa fee is refunded.",
    ),
]

GHENT_HOTELS = [
    ("City", "Limit per night"),
    ("Paris, Amsterdam, London", "175 EUR"),
    ("Other EU cities", "125 EUR"),
    ("Suzhou", "700 CNY"),
    ("Shanghai", "900 CNY"),
    ("Other cities in China", "600 CNY"),
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
    """Two sheets: bike and accessory prices in CNY and EUR, and service plans."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Prices"
    for row in PRICES:
        sheet.append(row)
    sheet.append(())
    sheet.append((PRICE_NOTE,))
    plans = book.create_sheet("Service Plans")
    for row in PLANS:
        plans.append(row)
    book.properties.created = book.properties.modified = FIXED
    book.properties.title = "Pellaro price list 2026"
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    normalize_zip(path)


def write_leave_policy(path: Path) -> None:
    """A Chinese Word document of headings and paragraphs."""
    from docx import Document

    doc = Document()
    for kind, text in LEAVE_ZH:
        if kind == "h":
            doc.add_heading(text, level=1)
        else:
            doc.add_paragraph(text)
    doc.core_properties.created = doc.core_properties.modified = FIXED
    doc.core_properties.title = "佩拉罗员工休假管理规定"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    normalize_zip(path)


def write_ghent_travel(path: Path) -> None:
    """An English Word document with a hotel-limit table under its own heading."""
    from docx import Document

    doc = Document()
    doc.add_heading("Business travel rules for Ghent staff", level=1)
    doc.add_paragraph(GHENT_INTRO)
    for title, text in GHENT_SECTIONS:
        doc.add_heading(title, level=2)
        if text is not None:
            doc.add_paragraph(text)
            continue
        table = doc.add_table(rows=0, cols=2)
        for city, limit in GHENT_HOTELS:
            cells = table.add_row().cells
            cells[0].text, cells[1].text = city, limit
    doc.core_properties.created = doc.core_properties.modified = FIXED
    doc.core_properties.title = "Pellaro travel rules for Ghent staff"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    normalize_zip(path)


def main() -> None:
    outputs = {
        CORPUS / "products" / "price_list.xlsx": write_price_list,
        CORPUS / "hr" / "leave_policy_zh.docx": write_leave_policy,
        CORPUS / "travel" / "travel_rules_ghent.docx": write_ghent_travel,
    }
    for path, write in outputs.items():
        write(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
