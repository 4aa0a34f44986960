"""Regenerate the tiny real documents in tests/data/docs (run once; the files are committed)."""

from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent / "docs"
FIXED = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    (HERE / "notes.txt").write_text("Meeting notes. The blue widget ships in March.\nThe red widget ships in May.\n")
    (HERE / "guide.md").write_text(
        "# Install guide\n\nPlug the hub into port 4 first.\n\n## Reset\n\nHold the reset pin for nine seconds.\n"
    )
    (HERE / "page.html").write_text(
        "<html><body><h1>Opening hours</h1><p>The Lisbon shop opens at 8:30 on weekdays.</p></body></html>"
    )
    (HERE / "mail.eml").write_text(
        "From: ops@example.com\nTo: team@example.com\nSubject: Server move\nDate: Thu, 1 Jan 2026 10:00:00 +0000\n"
        "Content-Type: text/plain; charset=utf-8\n\nThe database server moves to rack 12 on Friday.\n"
    )
    (HERE / "data.json").write_text('{"product": "Widget Pro", "warranty_years": 3, "colors": ["teal", "amber"]}')
    (HERE / "centers.csv").write_text("city,phone\nPorto,+351 555 0101\nBraga,+351 555 0102\n")
    (HERE / "中文说明.txt").write_text("产品说明。本产品的保修期为两年。请在干燥的地方存放。\n", encoding="utf-8")

    from docx import Document

    doc = Document()
    doc.add_heading("Travel policy", 1)
    doc.add_paragraph("Economy class is required for flights under six hours.")
    doc.add_heading("Meals", 1)
    doc.add_paragraph("The daily meal allowance is 45 euros.")
    doc.core_properties.created = FIXED
    doc.core_properties.modified = FIXED
    doc.save(HERE / "policy.docx")

    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FIXED)
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, "Manual page one. Charge the scanner for two hours before first use.")
    pdf.add_page()
    pdf.multi_cell(0, 10, "Manual page two. Error code E42 means the lens is dirty.")
    pdf.output(str(HERE / "manual.pdf"))

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Prices"
    ws.append(["Item", "Price"])
    ws.append(["Widget Pro", "129 EUR"])
    wb.properties.created = FIXED.replace(tzinfo=None)
    wb.properties.modified = FIXED.replace(tzinfo=None)
    wb.save(HERE / "prices.xlsx")

    from pptx import Presentation

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Quarterly plan"
    slide.placeholders[1].text = "Open the Madrid office in the third quarter."
    prs.core_properties.created = FIXED.replace(tzinfo=None)
    prs.core_properties.modified = FIXED.replace(tzinfo=None)
    prs.save(HERE / "deck.pptx")


if __name__ == "__main__":
    main()
