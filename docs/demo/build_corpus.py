"""Build the kbflow demo corpus: documents of the fictional company Starling Home Robotics.

Every file under docs/demo/corpus/ is generated from the text held in this script, so the
corpus can be rebuilt at any time:

    .venv/bin/python docs/demo/build_corpus.py

The output is deterministic: fixed document dates, fixed PDF creation date and producer,
and zip-based formats (docx, xlsx, pptx) are rewritten with fixed entry timestamps.
All names, people, addresses and phone numbers are invented.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# One fixed date for all document metadata (naive = UTC for the OOXML core properties).
DOC_DATE = datetime(2024, 6, 3, 9, 0, 0)
DOC_DATE_ISO = "2024-06-03T09:00:00Z"
ZIP_DATE = (2024, 6, 3, 9, 0, 0)
AUTHOR = "Starling Home Robotics"


# ---------------------------------------------------------------------------
# Plain text, Markdown, HTML, CSV
# ---------------------------------------------------------------------------

ABOUT_TXT = """\
Starling Home Robotics - Company Profile
Last reviewed: March 2024

Who we are

Starling Home Robotics (Chinese name: 星灵家居机器人) designs robot vacuums, mopping docks and smart door locks for apartments and family homes. The company was founded in 2016 in Shenzhen by two engineers, Lin Yuqing (CEO) and Jonas Becker (CTO), who met while building warehouse robots for a logistics start-up. Our first product, a bumper-navigation vacuum called the Starling S1, shipped in 2017 and sold 8,400 units in its first year.

Offices

Headquarters: Shenzhen, Nanshan District. Hardware engineering, industrial design, supplier management and the China sales team work here.
European office: Berlin, opened in October 2019 on Schlesische Strasse in Kreuzberg. The Berlin team owns the Starling Home app backend, EU product certification, and customer support for Germany, Austria and the Netherlands.

People

At the end of 2023 Starling employed 412 people: 298 in Shenzhen and 114 in Berlin. Roughly two in five employees work in research and development. The working languages are Chinese and English; most internal documents exist in at least one of them.

Current products

- Starling S7 robot vacuum with LiDAR navigation and mopping
- Starling Dock D3 self-emptying and mop-washing station for the S7
- Starling Lock L2 fingerprint smart lock for European profile cylinders
- Starling Home app for iOS and Android

Key figures

Revenue in fiscal year 2023 was 1.26 billion RMB. Starling holds 57 granted patents, most of them on obstacle detection and lock mechanics. Our products are sold in 11 countries, through our own online store and through retail partners.

How we work

Our internal motto is "quiet machines, honest specs": we publish runtime and noise figures measured in real homes, not in the lab. Every new product spends at least 1,000 hours in the homes of employee volunteers before launch. Hardware releases are approved by the Product Council, which meets on the first Tuesday of each month.
"""

LEAVE_POLICY_ZH_TXT = """\
星灵家居机器人 员工年假与请假管理办法
文件编号：HR-2024-03
生效日期：2024年1月1日
发布部门：人力资源部

一、适用范围
本办法适用于与深圳星灵家居机器人有限公司签订劳动合同的全体员工，包括外派至柏林办公室工作的员工。柏林办公室本地聘用的员工按照德国劳动法及柏林办公室员工手册执行，不适用本办法。

二、带薪年假
1. 累计工作满1年不满3年的员工，每年享有带薪年假5天；
2. 累计工作满3年不满10年的员工，每年享有带薪年假10天；
3. 累计工作满10年及以上的员工，每年享有带薪年假15天。
年假可以按半天为单位申请。当年未休完的年假可以顺延至次年3月31日，逾期未休的视为自动放弃，公司不予折算工资。新入职员工的年假按当年剩余日历天数折算，不足1整天的部分不计。

三、病假
员工因病需要休息的，应当在当天上午10点前通知直属主管。病假连续超过2天的，须提交二级及以上医院出具的诊断证明和病假条。病假期间工资按本人基本工资的80%发放，但不低于深圳市最低工资标准。

四、婚假、产假与陪产假
1. 婚假：员工依法登记结婚的，可享受婚假13天（含法定婚假及公司额外给予的奖励假），须在领证后一年内一次性休完；
2. 产假：女员工生育享受产假178天，难产或多胞胎生育的按国家及广东省规定增加；
3. 陪产假：男员工在配偶生育期间享受陪产假20天。

五、事假
事假为无薪假，每年累计不得超过15个工作日。事假原则上须提前3个工作日申请。

六、申请与审批流程
所有假期均须通过内部办公系统“星灵OA”提交申请：
- 单次请假不超过3天的，由直属主管审批；
- 单次请假3天以上的，须经部门负责人及人力资源部共同审批；
- 遇突发情况无法提前申请的，可先电话向主管报备，并在返岗后2个工作日内补办手续。
未经批准擅自离岗的，按旷工处理。

七、附则
本办法由人力资源部负责解释，自生效之日起执行，原《员工休假规定》（HR-2019-07）同时废止。
"""

S7_FAQ_ZH_TXT = """\
Starling S7 常见问题解答（FAQ）
适用机型：Starling S7（型号 SR-S7-01）
适用固件：v3.2.18 及以上版本
更新日期：2024年4月

Q1：S7 在 Starling Home App 里配网失败，怎么办？
A：S7 只支持 2.4GHz 频段的 Wi-Fi 网络，不支持 5GHz。请先确认路由器已开启 2.4GHz 频段，Wi-Fi 名称中不要包含表情符号等特殊字符，手机与机器人距离路由器不要太远。如果仍然配网失败，请重置网络设置：同时按住机身顶部的 Home 键和 Spot 键8秒，听到语音提示“网络已重置”后，再在 App 中重新添加设备。

Q2：清扫时噪音突然变大是什么原因？
A：大多数情况是主刷缠绕了头发，或者 HEPA 滤网被灰尘堵塞。建议每周清理一次主刷上的毛发，每两周用软毛刷轻拍清洁一次滤网（滤网不可水洗）。如果清理后噪音依旧，请在 App 的“设备信息”里上传日志并联系客服。

Q3：地图丢失或者房间分区错乱了怎么办？
A：S7 最多可以保存4张地图，适合多楼层的家庭使用。如果家具有较大变动，建议在 App 中进入“地图管理 → 重新建图”。建图期间请打开各房间的门，并移走地面上的电线和袜子等小物件。

Q4：S7 能越过多高的门槛？
A：S7 最高可以越过2厘米高的门槛。对于更高的门槛，建议在 App 中设置禁区，或者加装斜坡。

Q5：S7 的序列号在哪里？
A：序列号贴在集尘盒取出后的机身凹槽内，以 SN 开头，共16位。联系售后时请提供序列号和购买凭证。

Q6：S7 可以用语音助手控制吗？
A：可以。S7 目前支持小爱同学、天猫精灵和 Amazon Alexa。绑定方法：在 App 中进入“我的 → 第三方平台”，选择对应的语音助手并授权即可。

Q7：如何联系星灵客服？
A：中国大陆用户可拨打客服热线 400-833-7788（每天 9:00-21:00），也可以在 Starling Home App 中点击“在线客服”。
"""

LOCK_L2_MD = """\
# Starling Lock L2 Quick Start Guide

Model: SL-L2. This guide applies to lock firmware 1.8 or later.

## What's in the box

- Front panel with fingerprint reader and touch keypad
- Back panel with battery compartment and thumb turn
- 4 x AA alkaline batteries
- 2 mechanical emergency keys
- Mounting screws (M4 x 35 mm and M4 x 55 mm)
- Paper drilling template

## Door requirements

The Lock L2 fits doors between 40 and 110 mm thick that use a standard European profile cylinder.
Doors with a multi-point locking bar are supported as long as the bar can be moved by the cylinder alone.
Measure the door before you remove the old cylinder; the drilling template shows where to check.

## First setup

1. Insert the four AA batteries into the back panel. The keypad lights up blue.
2. Open the Starling Home app, tap **Add device** and select **Lock L2**.
3. Set the administrator passcode (6 to 10 digits).
4. Enrol the administrator fingerprint: place the same finger on the reader 6 times, moving it slightly each time.
5. Test the lock with the door open before you close it for the first time.

## Users, fingerprints and passcodes

The Lock L2 stores up to 100 fingerprints and 50 permanent passcodes.
Every fingerprint and passcode belongs to a user in the app, so you can see who unlocked the door and when.
Temporary passcodes for guests, cleaners or dog walkers are created in the app; each one expires after 24 hours at the latest and can optionally be limited to a single use.

## Batteries and emergency power

A set of four AA batteries lasts about 10 months at 10 unlocks per day.
When the battery level drops below 20%, the lock plays a short warning tone at every unlock and the app sends a reminder.
If the batteries run completely flat, connect a power bank to the USB-C emergency port under the front panel, then unlock with your fingerprint or passcode and replace the batteries.

## Security features

- After 5 wrong fingerprints or passcodes in a row, the keypad is locked for 3 minutes.
- Anti-peeping: you may type random digits before and after the correct passcode, up to 16 digits in total.
- Auto-lock re-locks the door 30 seconds after it closes (adjustable in the app).

## Factory reset

Remove the battery cover on the back panel and hold the RESET button for 5 seconds until the lock announces
"Restored to factory settings". All fingerprints, passcodes and users are deleted.
"""

DOCK_D3_ZH_MD = """\
# Starling Dock D3 自清洁基站使用说明

Dock D3（型号 SD-D3）是 Starling S7 扫地机器人的配套基站，可以自动集尘、清洗拖布并热风烘干。
使用前请确认 S7 的固件已升级到最新版本。

## 主要参数

- 清水箱容量：4升
- 污水箱容量：3.5升
- 集尘袋容量：2.5升，正常使用约可坚持7周
- 集尘时长：每次约12秒
- 热风烘干温度：45°C
- 外形尺寸：宽 42 厘米 × 深 48 厘米 × 高 55 厘米

## 摆放位置

1. 基站应靠墙放置在平整、坚硬的地面上，不要放在厚地毯上；
2. 基站两侧各预留至少50厘米空间，正前方预留至少1.5米空间；
3. 避免阳光直射，远离暖气片等热源；
4. 首次使用前，请将清水箱加满清水，**不要**加入热水或任何清洁剂以外的化学品。

## 拖布清洗与烘干

S7 每拖完一个房间（或者拖地面积达到约15平方米）后，会自动返回基站清洗拖布，然后继续工作。
全部清扫结束后，基站默认用热风烘干拖布3小时，以防止异味和霉菌；在 App 中可以改为4小时或者关闭烘干。

## 日常维护

- 污水箱建议每次使用后倒空并用清水冲洗；
- 集尘袋装满时 App 会提醒更换，请使用原装集尘袋（配件编号 SP-D3-DB05）；
- 每月清洗一次清洗槽底部的可拆卸滤网；
- 长时间不使用时，请倒空清水箱和污水箱，并拔下电源。

## 指示灯说明

| 指示灯状态 | 含义 |
| --- | --- |
| 白色常亮 | 待机 |
| 白色闪烁 | 正在集尘、清洗或烘干 |
| 橙色闪烁 | 清水箱缺水或污水箱已满 |
| 红色常亮 | 基站故障，请在 App 中查看详情 |
"""

IT_SECURITY_ZH_MD = """\
# 信息安全管理规定（员工版）

版本：V2.1　发布部门：IT 部　生效日期：2024年5月1日

本规定适用于星灵家居机器人深圳总部和柏林办公室的全体员工、实习生以及驻场外包人员。

## 一、账号与密码

- 公司账号的密码长度至少12位，须包含大写字母、小写字母、数字和符号中的至少三类；
- 密码每90天强制更换一次，新密码不得与最近5次使用过的密码相同；
- 所有员工必须为邮箱、星灵OA 和代码仓库开启双因素认证（2FA）；
- 严禁将密码写在便签上或通过即时通讯工具发送给他人，包括 IT 部同事。

## 二、设备管理

- 公司配发的笔记本电脑必须开启全盘加密（Windows 使用 BitLocker，macOS 使用 FileVault）；
- 笔记本电脑或工作手机丢失、被盗，须在发现后2小时内报告 IT 服务台（内线 8800，或发邮件至 it-help@starling-home.example），IT 部将远程锁定并擦除设备；
- 离开工位时必须锁屏，电脑无操作超过5分钟自动锁屏；
- 未经 IT 部批准，不得在公司电脑上安装破解软件或来源不明的插件。

## 三、远程访问

- 在公司网络以外访问内部系统，必须通过公司 VPN 客户端 SL-VPN 连接；
- 深圳与柏林两地共享的研发代码仓库只允许通过 SL-VPN 访问；
- 禁止在咖啡馆、机场等公共 Wi-Fi 下不开 VPN 处理工作文件。

## 四、数据分级

公司数据分为“公开”“内部”“机密”“绝密”四个级别：

- 产品宣传资料、已发布的说明书属于“公开”；
- 内部制度、组织架构属于“内部”；
- 未发布产品的路线图、价格策略属于“机密”；
- 固件源代码、用户个人数据和门锁密钥算法属于“绝密”，只能在公司加密存储中保存，严禁拷贝到U盘。

## 五、违规处理

违反本规定的，IT 部将视情节轻重发出书面警告；造成数据泄露的，按《员工奖惩办法》处理，情节严重的公司保留追究法律责任的权利。
"""

WARRANTY_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Starling Warranty and Repair FAQ</title>
</head>
<body>
<h1>Starling Warranty and Repair FAQ</h1>
<p>This page explains the manufacturer's warranty for products sold by Starling Home Robotics in the European Union.
It does not limit your statutory rights as a consumer.</p>

<h2>How long is my product covered?</h2>
<p>The Starling S7 robot vacuum and the Starling Dock D3 are covered for 24 months from the date of purchase.
The rechargeable battery of the S7 is covered for 18 months, because its capacity naturally declines with use.
The Starling Lock L2 has a longer warranty of 36 months, including its electronics and the motor in the back panel.</p>
<p>Consumables are not covered: brushes, filters, mop pads, dust bags and the AA batteries that come with the lock.</p>

<h2>What is Starling Care+?</h2>
<p>Starling Care+ is an optional extended plan. It adds two extra years of cover and one accidental-damage repair,
for example after the robot has fallen down the stairs. Care+ costs 49 EUR for the S7 and 29 EUR for the Lock L2,
and it must be bought within 60 days of the original purchase.</p>

<h2>How do I make a warranty claim?</h2>
<p>Open a claim in the Starling support portal and have your proof of purchase and the serial number ready.
For the S7 our support team will first try remote diagnosis through the app. If the product must be repaired,
we send you a prepaid shipping label. Our target is to finish repairs within 10 working days after the product
arrives at the repair center in Leipzig.</p>

<h2>What about repairs after the warranty has ended?</h2>
<p>Out-of-warranty repairs start with a diagnosis fee of 25 EUR. The fee is waived if you accept the repair quote.
Repaired parts carry a 6-month repair warranty of their own.</p>
</body>
</html>
"""

SERVICE_CENTERS = [
    ["city", "country", "address", "phone", "opening_hours", "services"],
    [
        "Shenzhen",
        "China",
        "1F, 88 Keyuan Road, Nanshan District",
        "+86 755 8612 3400",
        "Mon-Sun 09:00-21:00",
        "repair; walk-in; lock installation",
    ],
    [
        "Guangzhou",
        "China",
        "Room 305, 210 Tiyu West Road, Tianhe District",
        "+86 20 3887 5521",
        "Mon-Sat 10:00-19:00",
        "repair; walk-in",
    ],
    [
        "Shanghai",
        "China",
        "Unit 12, 1500 Century Avenue, Pudong",
        "+86 21 6015 9082",
        "Mon-Sat 10:00-19:00",
        "repair; walk-in",
    ],
    [
        "Chengdu",
        "China",
        "2F, 66 Tianfu Avenue North, High-tech Zone",
        "+86 28 8530 1147",
        "Tue-Sun 10:00-18:30",
        "repair",
    ],
    [
        "Berlin",
        "Germany",
        "Schlesische Strasse 27, 10997 Berlin",
        "+49 30 5683 2290",
        "Mon-Fri 09:00-18:00",
        "walk-in; lock installation",
    ],
    [
        "Munich",
        "Germany",
        "Landsberger Strasse 155, 80687 Munich",
        "+49 89 2015 4470",
        "Mon-Fri 10:00-18:00; Sat 10:00-14:00",
        "walk-in",
    ],
    [
        "Leipzig",
        "Germany",
        "Am Alten Flughafen 9, 04356 Leipzig",
        "+49 341 9902 615",
        "Mon-Fri 08:00-16:00 (no walk-in)",
        "central EU repair center",
    ],
    ["Vienna", "Austria", "Mariahilfer Strasse 101, 1060 Vienna", "+43 1 5972 3318", "Mon-Fri 10:00-18:00", "walk-in"],
    [
        "Amsterdam",
        "Netherlands",
        "Overtoom 320, 1054 JM Amsterdam",
        "+31 20 808 4471",
        "Tue-Sat 10:00-18:00",
        "walk-in",
    ],
]


# ---------------------------------------------------------------------------
# Word documents
# ---------------------------------------------------------------------------
# Each entry: (kind, text) with kind in title / h1 / h2 / p / bullet / number.

REFUND_POLICY_DOCX = [
    ("title", "Returns and Refund Policy"),
    (
        "p",
        "Starling Home Robotics - Online Store (EU and mainland China). Policy number CS-POL-011, version 4, valid from 1 February 2024.",
    ),
    ("h1", "1. Scope"),
    (
        "p",
        "This policy applies to products bought directly from the Starling online store and the Starling Home app. "
        "Products bought from a retail partner are returned to that retailer under its own conditions.",
    ),
    ("h1", "2. Return window"),
    (
        "p",
        "You can return any product within 21 days of delivery without giving a reason. This is longer than the "
        "14-day withdrawal period required by EU law. The return window starts on the day the parcel is delivered, "
        "as recorded by the carrier, not on the day of the order.",
    ),
    ("h1", "3. Condition of returned items"),
    (
        "p",
        "Products should be returned in their original packaging with all accessories, manuals and the charging dock. "
        "Used products are accepted, but we may deduct a restocking fee of 15% of the purchase price if accessories "
        "are missing or the product shows damage beyond normal testing.",
    ),
    (
        "p",
        "A Starling Lock L2 that has already been installed can be returned only after a factory reset and with "
        "both emergency keys. Locks with drilled or modified panels cannot be returned.",
    ),
    ("h1", "4. How to start a return"),
    ("number", "Log in to your Starling account and open Orders."),
    (
        "number",
        "Choose the product and click Request return. You will receive a return number that starts with RMA- "
        "and a prepaid shipping label.",
    ),
    (
        "number",
        "Pack the product securely and drop it at the carrier within 7 days of receiving the label; "
        "after that the return number expires.",
    ),
    (
        "p",
        "Returns are free of charge from Germany, Austria, the Netherlands and mainland China. "
        "From all other countries the customer pays the return shipping.",
    ),
    ("h1", "5. Refunds"),
    (
        "p",
        "Once the returned product arrives, our warehouse in Leipzig inspects it within 3 business days. "
        "The refund is then paid to the original payment method within 5 business days. Bank transfers and "
        "Alipay refunds may take longer to appear, depending on the bank.",
    ),
    (
        "p",
        "If you bought a bundle, such as the S7 with the Dock D3, you may return the whole bundle or only one part. "
        "For a partial return the refund equals the single price of the returned item minus the bundle discount.",
    ),
    ("h1", "6. Exceptions"),
    (
        "bullet",
        "Consumables that have been opened (dust bags, filters, mop pads) cannot be returned for hygiene reasons.",
    ),
    ("bullet", "Gift cards and Starling Care+ plans are refunded only if they have not been used."),
    (
        "bullet",
        "Products bought in a clearance sale marked Final sale cannot be returned, but the warranty still applies.",
    ),
    ("h1", "7. Contact"),
    (
        "p",
        "Questions about a return: returns@starling-home.example, or the chat in the Starling Home app "
        "(Monday to Friday, 09:00 to 18:00 CET).",
    ),
]

TRAVEL_POLICY_ZH_DOCX = [
    ("title", "员工差旅费用报销制度"),
    ("p", "深圳星灵家居机器人有限公司　文件编号：FIN-2023-12　生效日期：2023年7月1日　发布部门：财务部"),
    ("h1", "第一章　总则"),
    (
        "p",
        "为规范公司员工出差行为，合理控制差旅成本，特制定本制度。本制度适用于深圳总部及柏林办公室因公出差的全体员工。"
        "员工出差前须在“星灵OA”中提交出差申请，经直属主管批准后方可预订交通和住宿。",
    ),
    ("h1", "第二章　交通标准"),
    ("bullet", "国内出差优先选择高铁或动车二等座；高铁单程时间超过6小时的，可以改乘飞机经济舱。"),
    ("bullet", "深圳与柏林之间往返出差，员工可乘坐经济舱；总监及以上职级可乘坐超级经济舱。"),
    (
        "bullet",
        "市内交通原则上乘坐地铁或公交；晚上22点以后加班或携带样机等大件物品时，可乘坐出租车或网约车，凭行程单报销。",
    ),
    ("h1", "第三章　住宿标准"),
    ("p", "住宿费按每人每晚的上限实报实销，超出部分由员工自行承担："),
    ("bullet", "北京、上海：每晚不超过600元；"),
    ("bullet", "广州、杭州、成都：每晚不超过450元；"),
    ("bullet", "其他国内城市：每晚不超过350元；"),
    ("bullet", "柏林、慕尼黑等德国城市：每晚不超过140欧元；"),
    ("bullet", "其他欧洲城市：每晚不超过160欧元。"),
    ("p", "两名同性别员工同行出差的，原则上合住一间标准间。"),
    ("h1", "第四章　伙食补贴"),
    (
        "p",
        "国内出差伙食补贴为每人每天100元，境外出差为每人每天45欧元，按出差天数包干发放，无须提供餐饮发票。"
        "客户或合作伙伴已提供餐食的，相应餐次不再发放补贴。",
    ),
    ("h1", "第五章　报销流程"),
    ("number", "员工应在出差结束后15个工作日内，在“星灵OA”中提交报销单，并上传发票及行程单的电子版。"),
    (
        "number",
        "单笔报销金额在5000元以内的，由部门负责人审批；超过5000元的，须经部门总监审批；超过20000元的，须另经财务总监审批。",
    ),
    ("number", "财务部在审批完成后的每周四统一付款，报销款打入员工工资卡。"),
    ("p", "发票抬头须为“深圳星灵家居机器人有限公司”。境外票据须附中文或英文说明，并按付款当日汇率折算为人民币。"),
    ("h1", "第六章　附则"),
    ("p", "虚报、冒领差旅费用的，一经查实，公司将追回款项并给予纪律处分。本制度由财务部负责解释。"),
]


# ---------------------------------------------------------------------------
# PDF manual (Helvetica core font: ASCII text only)
# ---------------------------------------------------------------------------

S7_MANUAL_PAGES = [
    {
        "title": "Starling S7 Robot Vacuum - User Manual",
        "blocks": [
            ("h", "1. Overview"),
            (
                "p",
                "Thank you for choosing the Starling S7 (model SR-S7-01). The S7 is a robot vacuum with LiDAR "
                "navigation, a rubber main brush, one side brush and a vibrating mop plate. It builds a map of your "
                "home on the first run and can store maps for several floors. This manual covers setup, the battery "
                "and charging, and troubleshooting with error codes.",
            ),
            ("h", "2. Specifications"),
            (
                "p",
                "Maximum suction: 6000 Pa\n"
                "Dustbin capacity: 400 ml\n"
                "Water tank capacity: 240 ml\n"
                "Noise level in Quiet mode: 58 dB\n"
                "Weight: 3.6 kg\n"
                "Height: 9.7 cm (including LiDAR turret)\n"
                "Wireless: Wi-Fi 802.11 b/g/n",
            ),
            ("h", "3. Safety notes"),
            (
                "p",
                "Use only the charging dock and power adapter supplied with the S7. Do not use the robot outdoors, "
                "on wet floors or near open flames. Pick up cables, curtain cords and small objects before cleaning. "
                "Keep children from sitting or standing on the robot.",
            ),
        ],
    },
    {
        "title": "Battery and Charging",
        "blocks": [
            ("h", "4. Battery"),
            (
                "p",
                "The S7 uses a 5200 mAh lithium-ion battery pack (14.4 V). Runtime depends on the suction mode and the "
                "floor type. On hard floors the S7 runs for up to 180 minutes in Quiet mode, about 110 minutes in "
                "Standard mode and about 70 minutes in Max mode.",
            ),
            ("h", "5. Charging"),
            (
                "p",
                "Place the charging dock against a wall with 0.5 m of free space on each side and 1.5 m in front. "
                "A full charge from empty takes about 4.5 hours. When the battery falls to 15% during a cleaning run, "
                "the S7 returns to the dock by itself. With Resume Cleaning switched on, it continues the unfinished "
                "job as soon as the battery is charged back to 80%.",
            ),
            ("h", "6. Storage and battery care"),
            (
                "p",
                "If you will not use the S7 for more than one month, charge it to about 50%, switch it off with the "
                "power button and store it in a dry place. Charge and operate the robot only at room temperatures "
                "between 0 and 40 degrees Celsius. The battery is a wearing part; a replacement pack can be ordered "
                "from Starling support. Never open the battery pack yourself.",
            ),
        ],
    },
    {
        "title": "Error Codes and Troubleshooting",
        "blocks": [
            (
                "p",
                "When the S7 stops because of a problem, the status light turns red, the robot announces an error and "
                "the Starling Home app shows the error code. Fix the cause, then press the Home button to continue.",
            ),
            (
                "table",
                [
                    ("Code", "Meaning", "What to do"),
                    (
                        "E01",
                        "Left wheel stuck or lifted",
                        "Move the robot to a flat floor; remove hair from the wheel.",
                    ),
                    (
                        "E02",
                        "Right wheel stuck or lifted",
                        "Move the robot to a flat floor; remove hair from the wheel.",
                    ),
                    ("E03", "Bumper stuck", "Tap the bumper gently until it moves freely."),
                    ("E05", "LiDAR turret blocked", "Check that nothing presses on the turret; clear furniture edges."),
                    ("E07", "Cliff sensors dirty", "Wipe the four cliff sensors underneath with a dry cloth."),
                    ("E09", "Dustbin missing", "Insert the dustbin until it clicks."),
                    ("E12", "Main brush jammed", "Remove the main brush and cut away tangled hair."),
                    (
                        "E15",
                        "Battery temperature out of range",
                        "Let the robot cool down or warm up to room temperature.",
                    ),
                    ("E21", "Charging error", "Clean the charging contacts on the robot and on the dock."),
                ],
            ),
            (
                "p",
                "If an error code comes back after you restart the robot, contact Starling support and tell us the "
                "error code and the serial number printed under the dustbin.",
            ),
        ],
    },
]


# ---------------------------------------------------------------------------
# Spreadsheet
# ---------------------------------------------------------------------------

PRICES = [
    ("SKU", "Product", "Description", "Price CNY", "Price EUR", "Launched"),
    ("SR-S7-01", "Starling S7", "Robot vacuum with LiDAR and mop plate", 3299, 449, "2023-03"),
    ("SD-D3", "Starling Dock D3", "Self-emptying and mop-washing station", 1699, 229, "2023-03"),
    ("SR-S7D3-B", "Starling S7 + Dock D3 bundle", "S7 with Dock D3, bundle price", 4599, 629, "2023-03"),
    ("SL-L2", "Starling Lock L2", "Fingerprint smart lock, EU profile cylinder", 1499, 219, "2022-10"),
    ("SL-L2-BR", "Lock L2 bridge", "Wi-Fi bridge for remote unlocking", 299, 39, "2022-10"),
]

SPARE_PARTS = [
    ("Part code", "Part name", "Fits", "Recommended replacement", "Price EUR"),
    ("SP-S7-MB01", "Main brush", "S7", "every 6-12 months", 19.9),
    ("SP-S7-SB02", "Side brush set (2 pcs)", "S7", "every 3-6 months", 9.9),
    ("SP-S7-HF03", "HEPA filter pack (3 pcs)", "S7", "every 3 months", 14.9),
    ("SP-S7-MP04", "Washable mop pad (2 pcs)", "S7", "every 3 months", 12.9),
    ("SP-D3-DB05", "Dust bag (3 pcs)", "Dock D3", "when full", 15.9),
    ("SP-S7-BT06", "Battery pack 5200 mAh", "S7", "when runtime drops", 69.0),
    ("SP-L2-KY07", "Emergency key pair", "Lock L2", "as needed", 24.0),
]


# ---------------------------------------------------------------------------
# Presentation (mixed Chinese / English)
# ---------------------------------------------------------------------------

ROADMAP_SLIDES = [
    ("2025 产品路线图 Product Roadmap 2025", "星灵家居机器人 产品委员会 Product Council · 内部资料 · 2024年11月"),
    (
        "2024 回顾 Review",
        [
            "Starling S7 全年全球销量 21.6万台，其中欧洲占 38%",
            "Lock L2 在德国市场销量同比增长 64%",
            "Starling Home App 月活跃用户达到 38万",
            "退货率从 6.1% 降到 4.3%（主要得益于新版建图算法）",
        ],
    ),
    (
        "Starling S9（项目代号 Kestrel）",
        [
            "计划于2025年9月在深圳和柏林同步发布",
            "最大吸力提升到 8000 Pa，新增可抬升的侧刷",
            "前置 AI 摄像头，可识别 40 类常见障碍物（拖鞋、数据线、宠物粪便等）",
            "目标零售价 4999元 / 699 EUR",
        ],
    ),
    (
        "Lock L3 与 Dock D4",
        [
            "Lock L3：新增掌静脉识别，支持 Matter 协议，计划 2026年第一季度上市",
            "Dock D4：支持自动上下水，可连接厨房或阳台的水管",
            "两款产品继续兼容 Starling Home App",
        ],
    ),
    (
        "风险与依赖 Risks",
        [
            "LiDAR 模组目前只有一家供应商，需要在 2025年6月前完成第二供应商认证",
            "欧盟 Cyber Resilience Act（CRA）对联网设备提出新的安全要求",
            "柏林团队需要新增 6 名嵌入式软件工程师",
        ],
    ),
]


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def write_text(rel: str, text: str) -> Path:
    path = CORPUS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def write_csv(rel: str, rows) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return write_text(rel, buf.getvalue())


def normalize_zip(path: Path) -> None:
    """Rewrite an OOXML package with fixed entry timestamps and fixed core-property dates."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            if name == "docProps/core.xml":
                text = data.decode("utf-8")
                for tag in ("created", "modified"):
                    text = re.sub(rf"(<dcterms:{tag}[^>]*>)[^<]*(</dcterms:{tag}>)", rf"\g<1>{DOC_DATE_ISO}\g<2>", text)
                data = text.encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())


def _set_core(props, title: str) -> None:
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.title = title
    props.created = DOC_DATE
    props.modified = DOC_DATE
    props.revision = 1


def write_docx(rel: str, blocks, east_asian_font: str | None = None) -> Path:
    from docx import Document
    from docx.oxml.ns import qn

    doc = Document()
    if east_asian_font:
        for style_name in ("Normal", "Title", "Heading 1", "Heading 2"):
            rpr = doc.styles[style_name].element.get_or_add_rPr()
            rfonts = rpr.find(qn("w:rFonts"))
            if rfonts is None:
                rfonts = rpr.makeelement(qn("w:rFonts"), {})
                rpr.append(rfonts)
            rfonts.set(qn("w:eastAsia"), east_asian_font)
    for kind, text in blocks:
        if kind == "title":
            doc.add_heading(text, level=0)
        elif kind == "h1":
            doc.add_heading(text, level=1)
        elif kind == "h2":
            doc.add_heading(text, level=2)
        elif kind == "bullet":
            doc.add_paragraph(text, style="List Bullet")
        elif kind == "number":
            doc.add_paragraph(text, style="List Number")
        else:
            doc.add_paragraph(text)
    _set_core(doc.core_properties, blocks[0][1])
    path = CORPUS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    normalize_zip(path)
    return path


def write_manual_pdf(rel: str) -> Path:
    from fpdf import FPDF

    total = len(S7_MANUAL_PAGES)

    class Manual(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(110)
            self.cell(
                0,
                6,
                "Starling Home Robotics - Starling S7 User Manual (SR-S7-01), edition 2024-01",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            self.ln(4)
            self.set_text_color(0)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(110)
            self.cell(0, 10, f"Page {self.page_no()} of {total}", align="C")

    pdf = Manual(format="A4")
    pdf.set_creation_date(datetime(2024, 1, 15, 8, 0, 0, tzinfo=UTC))
    pdf.set_title("Starling S7 Robot Vacuum - User Manual")
    pdf.set_author(AUTHOR)
    pdf.set_subject("User manual for the Starling S7 robot vacuum")
    pdf.set_creator("kbflow docs/demo/build_corpus.py")
    pdf.set_producer("kbflow demo corpus")
    pdf.set_lang("en")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 15, 20)

    for page in S7_MANUAL_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.multi_cell(0, 9, page["title"], new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        for kind, content in page["blocks"]:
            if kind == "h":
                pdf.ln(2)
                pdf.set_font("Helvetica", "B", 13)
                pdf.multi_cell(0, 7, content, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            elif kind == "p":
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, content, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
            elif kind == "table":
                pdf.set_font("Helvetica", "", 10)
                with pdf.table(col_widths=(14, 62, 94), text_align="LEFT", line_height=6) as table:
                    for row in content:
                        r = table.row()
                        for value in row:
                            r.cell(value)
                pdf.ln(5)
    assert pdf.page_no() == total, "manual text overflowed a page"
    path = CORPUS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_xlsx(rel: str) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    sheets = [("Prices", PRICES, (12, 30, 44, 11, 11, 10)), ("Spare Parts", SPARE_PARTS, (13, 28, 10, 24, 11))]
    for i, (name, rows, widths) in enumerate(sheets):
        ws = wb.active if i == 0 else wb.create_sheet()
        ws.title = name
        for row in rows:
            ws.append(list(row))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for col, width in zip("ABCDEF", widths):
            ws.column_dimensions[col].width = width
        ws.freeze_panes = "A2"
    prices = wb["Prices"]
    for row in prices.iter_rows(min_row=2, min_col=4, max_col=5):
        for cell in row:
            cell.number_format = "#,##0"
    for (cell,) in wb["Spare Parts"].iter_rows(min_row=2, min_col=5, max_col=5):
        cell.number_format = "0.00"
    wb.properties.creator = AUTHOR
    wb.properties.lastModifiedBy = AUTHOR
    wb.properties.title = "Starling price list 2024 (EU and China)"
    wb.properties.created = DOC_DATE
    path = CORPUS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    normalize_zip(path)  # openpyxl always stamps "modified" with the current time
    return path


def write_pptx(rel: str) -> Path:
    from pptx import Presentation

    prs = Presentation()
    title, subtitle = ROADMAP_SLIDES[0]
    slide = prs.slides.add_slide(prs.slide_layouts[0])
    slide.shapes.title.text = title
    slide.placeholders[1].text = subtitle
    for heading, bullets in ROADMAP_SLIDES[1:]:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = heading
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
    _set_core(prs.core_properties, "2025 产品路线图 Product Roadmap 2025")
    path = CORPUS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    prs.save(path)
    normalize_zip(path)
    return path


def build() -> list[Path]:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    return [
        write_text("company/about_starling.txt", ABOUT_TXT),
        write_pptx("company/roadmap_2025.pptx"),
        write_text("hr/leave_policy_zh.txt", LEAVE_POLICY_ZH_TXT),
        write_text("policies/it_security_zh.md", IT_SECURITY_ZH_MD),
        write_docx("policies/refund_policy.docx", REFUND_POLICY_DOCX),
        write_docx("policies/travel_expense_policy_zh.docx", TRAVEL_POLICY_ZH_DOCX, east_asian_font="Microsoft YaHei"),
        write_text("products/dock_d3_guide_zh.md", DOCK_D3_ZH_MD),
        write_text("products/lock_l2_quickstart.md", LOCK_L2_MD),
        write_xlsx("products/price_list.xlsx"),
        write_manual_pdf("products/starling_s7_manual.pdf"),
        write_csv("support/service_centers.csv", SERVICE_CENTERS),
        write_text("support/s7_faq_zh.txt", S7_FAQ_ZH_TXT),
        write_text("support/warranty_faq.html", WARRANTY_HTML),
    ]


if __name__ == "__main__":
    for p in build():
        print(f"{p.relative_to(CORPUS)}  ({p.stat().st_size} bytes)")
