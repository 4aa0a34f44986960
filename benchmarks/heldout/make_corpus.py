"""Write the two binary documents of the held-out corpus: products/price_list.xlsx and hr/leave_rules_zh.docx.

The other corpus files are plain text and committed as written. Run from the repository root:
    .venv/bin/python benchmarks/heldout/make_corpus.py
The output is the same on every run (fixed document dates and zip entry timestamps).
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
FIXED = datetime(2026, 1, 15, 9, 0, 0)
ZIP_DATE = (2026, 1, 15, 9, 0, 0)

PRICES = [
    ("SKU", "Product", "产品名称", "Price CNY", "Price EUR", "Warranty (months)", "Launch"),
    ("CAS-AP60-2", "AP-60 air purifier", "AP-60 空气净化器", 2499, 329, 24, "2023-03"),
    ("CAS-AP90-1", "AP-90 air purifier", "AP-90 空气净化器", 3899, 519, 36, "2024-10"),
    ("CAS-S2-01", "Sense S2 air-quality sensor", "Sense S2 空气质量检测仪", 599, 79, 12, "2024-04"),
    ("CAS-F6", "F6 filter (for AP-60)", "F6 滤网（AP-60 用）", 269, 39, 6, "2023-03"),
    ("CAS-F9", "F9 filter (for AP-90)", "F9 滤网（AP-90 用）", 399, 55, 6, "2024-10"),
    ("CAS-WM90", "AP-90 wall mount", "AP-90 壁挂支架", 189, 29, 12, "2025-02"),
]

PLANS = [
    ("Plan", "服务计划", "Term (years)", "Price CNY", "Price EUR", "Covers"),
    ("CareOne", "一年延保", 1, 199, 29, "AP-60, AP-90; parts and labour"),
    ("CareThree", "三年延保", 3, 499, 69, "AP-60, AP-90; parts, labour and one free F6/F9 filter"),
    ("SensorCare", "检测仪延保", 2, 99, 15, "Sense S2 only; battery included"),
]

PRICE_NOTE = (
    "Prices as of 1 January 2026, including VAT (13% in China, 21% in the Netherlands). Invented for testing. "
    "价格自2026年1月1日起生效，含增值税。School and NGO orders get 12% off list price; orders of 50 or more "
    "purifiers get 18% off. 教育机构订单九折以下价格须经销售总监批准。"
)

LEAVE_ZH = [
    ("h", "科沃德员工休假管理规定（中国大陆员工）"),
    ("p", "本规定适用于杭州总部和湖州工厂的正式员工，鹿特丹员工适用当地合同。文中数据均为测试用途虚构。"),
    ("h", "一、年假"),
    (
        "p",
        "员工在本公司连续工作满1年不满5年的，年假为7天；满5年不满10年的，年假为12天；满10年及以上的，年假为"
        "18天。试用期为3个月（管理岗为6个月），试用期内不享受年假。当年未休完的年假可顺延至次年3月31日，逾期作废。",
    ),
    ("h", "二、病假"),
    (
        "p",
        "每年病假前5天全额发放工资，第6天起按基本工资的80%发放。连续病假超过2天的，须提交二级以上医院证明。"
        "病假每年累计超过30天的，由人力资源部与员工面谈。",
    ),
    ("h", "三、婚假、产假与陪产假"),
    (
        "p",
        "员工依法登记结婚的，享受婚假13天（含法定婚假3天和公司额外奖励10天），须在登记后1年内一次休完。"
        "女员工产假为158天，难产增加15天；男员工陪产假为15天，须在配偶生产后60天内休完。",
    ),
    ("h", "四、请假审批"),
    (
        "p",
        "请假3天以内由直属经理审批；3天以上、10天以内由部门总监审批；10天以上由人力资源总监审批。"
        "年假须至少提前5个工作日申请，病假可在当天上午10点前电话告知直属经理，事后2个工作日内补办手续。",
    ),
    ("h", "五、事假"),
    ("p", "事假每年累计不超过10天，事假期间不发工资。连续旷工3天或一年内累计旷工5天的，按严重违纪处理。"),
    ("h", "六、调休"),
    ("p", "工作日加班可申请调休，调休须在加班后3个月内使用。法定节假日加班按300%支付加班费，不安排调休。"),
]


def normalize_zip(path: Path) -> None:
    """Rewrite an OOXML package with fixed entry timestamps so the bytes do not change between runs."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())


def write_price_list(path: Path) -> None:
    """Two sheets: product prices in CNY and EUR with warranty months, and extended-warranty plans."""
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
    book.properties.title = "Corvid price list 2026"
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    normalize_zip(path)


def write_leave_rules(path: Path) -> None:
    """A Chinese Word document of headings and paragraphs."""
    from docx import Document

    doc = Document()
    for kind, text in LEAVE_ZH:
        if kind == "h":
            doc.add_heading(text, level=1)
        else:
            doc.add_paragraph(text)
    doc.core_properties.created = doc.core_properties.modified = FIXED
    doc.core_properties.title = "科沃德员工休假管理规定"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    normalize_zip(path)


def main() -> None:
    write_price_list(CORPUS / "products" / "price_list.xlsx")
    write_leave_rules(CORPUS / "hr" / "leave_rules_zh.docx")
    print(f"wrote {CORPUS / 'products' / 'price_list.xlsx'} and {CORPUS / 'hr' / 'leave_rules_zh.docx'}")


if __name__ == "__main__":
    main()
