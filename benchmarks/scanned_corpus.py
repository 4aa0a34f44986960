"""The text of the held-out scanned folder (benchmarks/scanned.py): Tidewell Marine Instruments (潮汐湾海洋仪器), an
invented maker of depth sounders, marine radios and tracking buoys, different from the demo's Starling Home Robotics
and the held-out sets' Corvid Air Systems and Pellaro Cycles. Written for this benchmark; each question's answer is
in its own document only.

DOCUMENTS: file name -> its pages (a page is paragraphs separated by a blank line; the first line is the title).
QUESTIONS: (question, expected source, language of the question -> of the document).
"""

from __future__ import annotations

DOCUMENTS: dict[str, list[str]] = {
    # --- image-only PDFs -------------------------------------------------------------------------------------------
    "halvorsen_supply_agreement.pdf": [
        """Supply Agreement: Tidewell Marine Instruments and Halvorsen Cable Works

This agreement is made between Tidewell Marine Instruments Co., Ltd. (the Buyer) and Halvorsen Cable Works AS of
Bergen, Norway (the Supplier). The Supplier will deliver shielded transducer cable, type HC-7, and moulded
connectors for the DS-40 depth sounder.

The agreement runs for three years from 1 February 2026 and renews for one year at a time unless either party
gives notice. Section 9 sets out how notice is given.""",
        """Section 4: Prices and quantities

The price of HC-7 cable is 38.50 euros per metre for orders under 2,000 metres and 34.20 euros per metre above
that. Moulded connectors cost 11.80 euros each. Prices are fixed for the first eighteen months; after that the
Supplier may raise them once a year by no more than the Norwegian producer price index.

The Buyer forecasts 9,000 metres of cable in the first year and places binding orders each quarter.""",
        """Section 6: Delivery and late delivery

Goods are delivered DAP Ningbo within 35 days of a binding order. For each day a delivery is late, the Supplier
pays a penalty of 0.5 percent of the value of the late goods, capped at 8 percent of that value. A delay caused by
a strike at the port of Ningbo does not count as late delivery.

Each reel is shipped with a test report showing the cable's capacitance and insulation resistance.""",
        """Section 9: Termination and notice

Either party may end this agreement with 90 days' written notice, sent by registered letter to the addresses
above. The Buyer may end it at once if two deliveries in a row fail the incoming inspection.

Disputes are settled by arbitration in Singapore under English law.

Signed for the Buyer: Marcus Lindqvist, purchasing director. Signed for the Supplier: Ingrid Halvorsen.""",
    ],
    "质量手册_DS40.pdf": [
        """DS-40 测深仪质量手册

本手册规定潮汐湾海洋仪器有限公司 DS-40 测深仪从来料到出厂的质量控制要求，适用于宁波工厂第二生产线。

来料检验：换能器陶瓷片每批抽检 32 片，发现一片裂纹即整批退回供应商。电路板按批量的百分之五抽检，
焊点缺陷超过三处的电路板送返修组。""",
        """换能器校准

每台 DS-40 的换能器必须在校准水槽中完成校准。水槽水温保持在二十五摄氏度，误差不超过正负一度。
校准时把换能器放在水面下一米处，对准水槽底部的不锈钢反射板，读取十次深度，平均值与标准深度之差
不得超过五厘米。

校准记录保存七年，每条记录写明校准员工号和水槽编号。""",
        """返修与出厂检验

返修后的产品要重新做全部功能测试，同一台产品最多返修两次，第三次不合格即报废。

出厂前每台产品进行七十二小时老化测试，老化房温度为四十五摄氏度。包装前由质检员贴上绿色合格标签，
标签上印有生产日期和序列号。""",
    ],
    "员工宿舍管理规定.pdf": [
        """员工宿舍管理规定

为了给员工提供安全整洁的住宿环境，潮汐湾海洋仪器有限公司制定本规定。宿舍位于工厂东门对面的三号楼，
每间住四人。

入住时员工需交押金八百元，退宿时房间设施无损坏即全额退还。宿舍每晚十一点半关门，晚归员工须在
门卫处登记姓名和房间号。""",
        """访客、卫生与用电

访客只能在晚上九点前进入宿舍，并在一楼登记身份证。宿舍内禁止使用电热毯、电炉和大功率吹风机，
违者第一次警告，第二次取消住宿资格。

每周六上午由宿舍长安排卫生检查，连续三次被评为最差的房间，每人扣绩效分两分。""",
    ],
    "northern_tern_service_report.pdf": [
        """Field Service Report FS-2026-118

Vessel: Northern Tern, a 24-metre trawler based at Zhoushan. Owner: Ocean Harvest Fisheries. Engineer: Daniel
Okafor of Tidewell's service team. Date of visit: 12 March 2026.

Complaint: the NavLink R2 marine radio lost transmit power after about ten minutes of use and the skipper could
hear the coast station but could not be heard.""",
        """Findings and work done

The engineer measured the standing wave ratio at the radio and found 3.8 to 1, far above the 1.5 to 1 limit. Salt
water had entered the antenna connector at the top of the mast and corroded it. The corroded PL-259 antenna
connector was replaced and sealed with self-amalgamating tape. After the repair the ratio was 1.2 to 1.

The visit was billed at 1,650 yuan, including two hours of labour. Next inspection: September 2026.""",
    ],
    "东海渔业合作社报价单.pdf": [
        """报价单 编号 QT-2026-0457

客户：东海渔业合作社，联系人 陈国栋。供应商：潮汐湾海洋仪器有限公司销售部。

产品：BuoyMate B5 渔网追踪浮标，数量二十台，单价一千二百八十元，合计两万五千六百元。另含安装培训一次，
免费。

交货期为收到定金后十五个工作日。付款方式：合同签订后付百分之三十定金，交货验收后付清余款。
本报价单有效期为四十五天，过期需重新报价。""",
    ],
    "bay_survey_incident_report.pdf": [
        """Incident Report IR-2026-07: tracking buoy lost during a survey

On 8 May 2026 a BuoyMate B5 tracking buoy, serial B5-11042, was lost during a harbour survey in Xiangshan Bay.
The survey was run by Tidewell's applications team for a customer demonstration. Weather: wind force 5, waves
about 1.5 metres.""",
        """What happened

The buoy was tied to the survey boat with a 6 mm nylon line. At 14:20 the line parted where it rubbed against the
boat's guard rail, and the buoy drifted away. Its last GPS position was reported at 15:05, about 2.3 kilometres
east of the harbour entrance, after which the battery cover leaked and the buoy stopped reporting.""",
        """Actions

From now on survey buoys are tied with 10 mm braided polyester line and a chafe guard wherever the line touches the
boat. The battery cover design will be reviewed by the mechanical team by the end of June. Cost of the lost buoy:
1,280 yuan, written off against the demonstration budget. Report written by Chen Yiwen.""",
    ],
    # --- PNG images -------------------------------------------------------------------------------------------------
    "buoymate_warranty_card.png": [
        """BuoyMate B5 Warranty Card

Thank you for choosing a Tidewell BuoyMate B5 tracking buoy. The buoy is guaranteed against defects in materials
and workmanship for 24 months from the date of purchase. The rechargeable battery is covered for 12 months.

The warranty does not cover damage from a battery cover left open at sea, from charging with a charger other than
the BC-2, or from the buoy being towed above 8 knots. Keep this card and the purchase receipt.""",
    ],
    "车间安全须知.png": [
        """车间安全须知

一、焊接工位必须开启排烟罩，排烟罩每月清洗一次滤网。

二、锂电池存放在专用电池间，电池间最多存放五十个电池包，旁边配备D类灭火器和防火沙箱。

三、进入喷漆房必须佩戴活性炭防毒面具，喷漆房内禁止使用手机。

四、新员工上岗前必须通过安全考试，考试成绩不低于九十分。""",
    ],
    "navlink_r2_manual_extract.png": [
        """NavLink R2 用户手册（节选）

遇险呼叫：掀开红色保护盖，按住 DISTRESS 键五秒，电台自动在第七十频道发送数字遇险信号，并切换到
第十六频道等待应答。

恢复出厂设置：关机状态下同时按住 CH 键和 SCAN 键，再按电源键开机，屏幕显示 RESET 后松开。
恢复后需重新输入本船的九位识别码。""",
    ],
    "marlow_freight_invoice.png": [
        """Marlow Freight Ltd. Invoice MF-88213

Bill to: Tidewell Marine Instruments, Ningbo. Invoice date: 3 April 2026.

Sea freight of two pallets of DS-40 depth sounders from Ningbo to Rotterdam, container MSKU 4471209: 2,340 US
dollars. Insurance: 118 US dollars. Customs documents: 65 US dollars. Total due: 2,523 US dollars.

Payment is due within 30 days to our account at Harbour Bank, account number 0047-221-903.""",
    ],
    # --- JPEG images (scans and a phone photo) ----------------------------------------------------------------------
    "q3_planning_meeting_notes.jpg": [
        """Q3 Planning Meeting: notes

Present: Marcus Lindqvist, Chen Yiwen, Daniel Okafor, Lucy Zhang.

1. The DS-50 depth sounder launch moves from October to 14 November 2026, because the new display panel failed
its cold test at minus 20 degrees.

2. The marketing budget for the Shanghai boat show is 180,000 yuan.

3. Lucy Zhang will hire two more service engineers for the Zhoushan office before September.""",
    ],
    "出差审批单_林晓燕.jpg": [
        """出差审批单

申请人：林晓燕，销售部。出差地点：宁波国际游艇展。出差时间：二零二六年四月十六日至四月十九日。

出差事由：在展会上展示 NavLink R2 电台和 BuoyMate B5 浮标，拜访三家船厂客户。

预算：交通费八百元，住宿费两千四百元，展位物料一千四百元，合计四千六百元。

部门经理意见：同意。财务部意见：住宿标准按每晚六百元执行。""",
    ],
    "ds40_calibration_certificate.jpg": [
        """Calibration Certificate TW-CAL-2291

Instrument: DS-40 depth sounder, serial number DS40-07735. Customer: Zhejiang Hydrographic Survey Bureau.

The instrument was calibrated in tank 2 against a reference depth of 4.000 metres. Measured depth: 4.012 metres.
Expanded uncertainty: plus or minus 0.05 metres at 95 percent confidence.

This certificate is valid until 30 June 2027. Calibrated by engineer number 0316.""",
    ],
    "新员工培训通知.jpg": [
        """新员工培训通知

各部门：

二零二六年三月入职的新员工培训定于三月二十三日上午九点在行政楼二楼会议室B举行，为期两天。

培训内容：公司历史与产品介绍、质量体系、车间安全、报销流程。第二天下午进行闭卷考试。

请新员工带上工牌和笔记本电脑。培训负责人：人力资源部 王芳，电话分机 8012。""",
    ],
}

# (question, expected source, "en" / "zh" / "en->zh" / "zh->en")
QUESTIONS: list[tuple[str, str, str]] = [
    ("What penalty does Halvorsen pay for each day a cable delivery is late?", "halvorsen_supply_agreement.pdf", "en"),
    (
        "How much notice is needed to end the cable supply agreement with Halvorsen?",
        "halvorsen_supply_agreement.pdf",
        "en",
    ),
    ("与 Halvorsen 电缆供应协议的期限是几年？", "halvorsen_supply_agreement.pdf", "zh->en"),
    ("DS-40 换能器校准时水槽水温是多少？", "质量手册_DS40.pdf", "zh"),
    ("DS-40 出厂前老化测试要做多少小时？", "质量手册_DS40.pdf", "zh"),
    ("入住员工宿舍要交多少押金？", "员工宿舍管理规定.pdf", "zh"),
    ("宿舍晚上几点关门？", "员工宿舍管理规定.pdf", "zh"),
    ("Which part was replaced on the Northern Tern's NavLink R2 radio?", "northern_tern_service_report.pdf", "en"),
    (
        "What was the standing wave ratio measured on the trawler before the repair?",
        "northern_tern_service_report.pdf",
        "en",
    ),
    ("东海渔业合作社的浮标报价单有效期是多少天？", "东海渔业合作社报价单.pdf", "zh"),
    ("Why was the BuoyMate B5 buoy lost during the Xiangshan Bay survey?", "bay_survey_incident_report.pdf", "en"),
    ("What line will survey buoys be tied with from now on?", "bay_survey_incident_report.pdf", "en"),
    ("How long is the BuoyMate B5 battery covered by the warranty?", "buoymate_warranty_card.png", "en"),
    ("电池间最多可以存放多少个电池包？", "车间安全须知.png", "zh"),
    ("How many lithium battery packs may be stored in the battery room?", "车间安全须知.png", "en->zh"),
    ("NavLink R2 如何恢复出厂设置？", "navlink_r2_manual_extract.png", "zh"),
    ("What is the total due on the Marlow Freight invoice?", "marlow_freight_invoice.png", "en"),
    ("When will the DS-50 depth sounder launch?", "q3_planning_meeting_notes.jpg", "en"),
    ("What is the marketing budget for the Shanghai boat show?", "q3_planning_meeting_notes.jpg", "en"),
    ("林晓燕去宁波游艇展出差的预算合计多少？", "出差审批单_林晓燕.jpg", "zh"),
    (
        "What is the expanded uncertainty on calibration certificate TW-CAL-2291?",
        "ds40_calibration_certificate.jpg",
        "en",
    ),
    ("新员工培训在哪个会议室举行？", "新员工培训通知.jpg", "zh"),
    ("Who is in charge of the new staff training in March?", "新员工培训通知.jpg", "en->zh"),
]
