"""Name material for the synthetic organisation: countries, people, companies, domains, software.

Everything a detection could key on (site codes, host and user names, client codes, domains,
service names) is drawn from these pools with the seed's generator, so it changes per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    cities: tuple[tuple[str, str], ...]  # (city code, IANA time zone)
    people: str  # key into GIVEN/SURNAMES


HQ_COUNTRY = Country(
    "jp", "Japan",
    (("tyo", "Asia/Tokyo"), ("osa", "Asia/Tokyo"), ("ngo", "Asia/Tokyo"), ("yok", "Asia/Tokyo")),
    "jp",
)  # fmt: skip

OVERSEAS: tuple[Country, ...] = (
    Country("sg", "Singapore", (("sin", "Asia/Singapore"),), "sea"),
    Country("th", "Thailand", (("bkk", "Asia/Bangkok"), ("cnx", "Asia/Bangkok")), "th"),
    Country("us", "United States", (("sfo", "America/Los_Angeles"), ("nyc", "America/New_York"),
                                    ("chi", "America/Chicago"), ("sea", "America/Los_Angeles")),
            "en"),
    Country("my", "Malaysia", (("kul", "Asia/Kuala_Lumpur"), ("pen", "Asia/Kuala_Lumpur")), "sea"),
    Country("vn", "Vietnam", (("sgn", "Asia/Ho_Chi_Minh"), ("han", "Asia/Ho_Chi_Minh")), "vn"),
    Country("ph", "Philippines", (("mnl", "Asia/Manila"), ("ceb", "Asia/Manila")), "en"),
    Country("in", "India", (("blr", "Asia/Kolkata"), ("bom", "Asia/Kolkata")), "in"),
    Country("au", "Australia", (("syd", "Australia/Sydney"), ("mel", "Australia/Melbourne")), "en"),
    Country("gb", "United Kingdom", (("lon", "Europe/London"), ("man", "Europe/London")), "en"),
    Country("de", "Germany", (("fra", "Europe/Berlin"), ("muc", "Europe/Berlin")), "de"),
    Country("tw", "Taiwan", (("tpe", "Asia/Taipei"),), "sea"),
    Country("kr", "South Korea", (("sel", "Asia/Seoul"), ("pus", "Asia/Seoul")), "kr"),
)  # fmt: skip

GIVEN: dict[str, tuple[str, ...]] = {
    "jp": ("hiroshi", "takeshi", "yuki", "akira", "kenji", "naoko", "yumi", "satoshi", "haruka",
           "daisuke", "emi", "kazuo", "mai", "ryo", "sakura", "shota", "tomoko", "yusuke", "aya",
           "koji", "masato", "nao", "rie", "sho", "taro", "yoko", "jun", "keiko", "makoto", "riku"),
    "sea": ("wei", "jia", "hui", "ming", "siti", "ahmad", "nur", "kai", "li", "mei", "farah",
            "jun", "rahul", "aisyah", "daniel", "grace", "hafiz", "irene", "jasmine", "kelvin"),
    "th": ("somchai", "anong", "kittipong", "malee", "narong", "pim", "somsak", "wanida",
           "arthit", "chai", "kanya", "niran", "ploy", "suda", "thanawat", "yupin"),
    "en": ("james", "mary", "john", "linda", "michael", "sarah", "david", "karen", "robert",
           "emily", "chris", "jessica", "daniel", "laura", "kevin", "amanda", "brian", "megan",
           "jose", "maria", "paul", "anna", "mark", "rachel"),
    "vn": ("anh", "binh", "chau", "dung", "hoa", "hung", "lan", "linh", "minh", "nam", "phuong",
           "quang", "thao", "tuan", "vy"),
    "in": ("aarav", "priya", "rohan", "ananya", "vikram", "divya", "arjun", "kavya", "sanjay",
           "neha", "rahul", "pooja", "amit", "sneha"),
    "de": ("lukas", "anna", "jonas", "lena", "felix", "laura", "paul", "marie", "max", "julia",
           "tobias", "sophie", "stefan", "katrin"),
    "kr": ("minjun", "seoyeon", "jiho", "hayoon", "doyun", "jiwoo", "eunji", "hyunwoo", "sumin",
           "jaehyun"),
}  # fmt: skip

SURNAMES: dict[str, tuple[str, ...]] = {
    "jp": ("sato", "suzuki", "takahashi", "tanaka", "watanabe", "ito", "yamamoto", "nakamura",
           "kobayashi", "kato", "yoshida", "yamada", "sasaki", "yamaguchi", "matsumoto", "inoue",
           "kimura", "hayashi", "shimizu", "yamazaki", "mori", "abe", "ikeda", "hashimoto",
           "ishikawa", "ogawa", "okada", "goto", "hasegawa", "murakami", "kondo", "ishii", "saito",
           "sakamoto", "endo", "aoki", "fujii", "nishimura", "fukuda", "ota"),
    "sea": ("tan", "lim", "lee", "ng", "ong", "wong", "goh", "chua", "chan", "koh", "teo", "ang",
            "yeo", "abdullah", "ismail", "rahman", "hassan", "chong", "low", "sim"),
    "th": ("saetang", "srisuk", "wongsa", "chaiyaporn", "rattana", "boonmee", "kaewkla",
           "thongdee", "somboon", "phromma", "siriwat", "intarasuk"),
    "en": ("smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
           "rodriguez", "martinez", "wilson", "anderson", "taylor", "thomas", "moore", "jackson",
           "martin", "thompson", "white", "harris", "clark", "lewis", "walker", "hall", "young"),
    "vn": ("nguyen", "tran", "le", "pham", "hoang", "phan", "vu", "dang", "bui", "do", "ho", "ngo"),
    "in": ("sharma", "patel", "singh", "kumar", "gupta", "reddy", "iyer", "nair", "rao", "mehta",
           "joshi", "das"),
    "de": ("mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker",
           "schulz", "hoffmann", "koch", "richter"),
    "kr": ("kim", "lee", "park", "choi", "jung", "kang", "cho", "yoon", "jang", "lim", "han",
           "shin"),
}  # fmt: skip

ORG_WORDS = (
    "norden", "kairos", "aster", "meridian", "helix", "solace", "vantage", "corvid", "tessera",
    "orion", "lumen", "arbor", "kestrel", "halcyon", "nimbus", "quartz", "sable", "tidewater",
)  # fmt: skip

COMPANY_A = (
    "Asahi", "Hokuto", "Kanto", "Kansai", "Chubu", "Tohoku", "Kyushu", "Pacific", "Seaside",
    "Summit", "Harbor", "Granite", "Crescent", "Northern", "Eastern", "Western", "Central",
    "Pioneer", "Keystone", "Riverside", "Sakura", "Fuji", "Midori", "Aoba", "Shinsei", "Daiichi",
    "Sunrise", "Blue Ridge", "Silverline", "Ironwood", "Lakeside", "Meiji", "Taisho", "Hikari",
    "Orient", "Global", "United", "Allied", "Coastal", "Highland",
)  # fmt: skip
COMPANY_B = (
    "Rail", "Electric", "Power", "Gas", "Telecom", "Logistics", "Shipping", "Motors",
    "Steel", "Chemical", "Foods", "Pharma", "Construction", "Engineering", "Systems", "Networks",
    "Semiconductor", "Optics", "Aerospace", "Marine", "Trading", "Insurance", "Finance", "Energy",
    "Water Works", "Cable", "Broadcasting", "Medical", "Robotics", "Materials", "Software",
    "Instruments",
)  # fmt: skip
COMPANY_SUFFIX = ("K.K.", "Co. Ltd.", "Corporation", "Holdings", "Inc.", "Ltd", "Pte Ltd", "Group")
DEFENCE_A = (
    "Naval Facilities", "Maritime Surveillance", "Defence Communications", "Ground Systems",
    "Air Defence Logistics", "Coastal Radar", "Signals Engineering", "Fleet Support",
    "Joint Infrastructure", "Base Facilities",
)  # fmt: skip
DEFENCE_B = ("Bureau", "Command", "Office", "Agency", "Directorate", "Programme")
REGIONS = ("North", "South", "East", "West", "Central", "Kure", "Sasebo", "Maizuru", "Ominato",
           "Yokosuka", "Naha", "Chitose")  # fmt: skip

CLIENT_DOCS = (
    "contract", "quote", "invoice", "network_design", "site_survey", "circuit_list",
    "maintenance_report", "sla", "order", "acceptance_test", "rack_layout", "ip_plan",
    "meeting_notes", "proposal", "change_request", "billing", "topology", "handover",
)  # fmt: skip
DEFENCE_DOCS = (
    "facility_layout", "comms_equipment", "line_inventory", "base_network", "crypto_units",
    "radio_plan", "site_access", "cable_routes", "backup_links", "equipment_spec",
)  # fmt: skip
DOC_EXT = (".docx", ".xlsx", ".pdf", ".pptx", ".vsdx", ".csv", ".msg")
SHARE_NAMES = ("clients", "customers", "accounts", "engagements")
DEPT_SHARES = ("dept", "teams", "groups")
LOCAL_BASES = ("D:\\shares", "E:\\data", "D:\\fileshare", "E:\\shares")

WEB_WORDS = (
    "cloud", "news", "mail", "docs", "cdn", "portal", "shop", "maps", "video", "office", "search",
    "market", "travel", "bank", "weather", "social", "learn", "stream", "data", "api", "static",
    "media", "img", "sync", "files", "meet", "chat", "login", "track", "ads",
)  # fmt: skip
TLDS = ("com", "net", "org", "jp", "io", "co", "info", "biz")

APPS = (
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE", "OUTLOOK.EXE"),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE", "EXCEL.EXE /e"),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "WINWORD.EXE /n"),
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "chrome.exe"),
    ("C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe", "msedge.exe"),
    ("C:\\Windows\\System32\\notepad.exe", "notepad.exe"),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\POWERPNT.EXE", "POWERPNT.EXE"),
    ("C:\\Windows\\System32\\mstsc.exe", "mstsc.exe"),
    ("C:\\Program Files\\Adobe\\Acrobat DC\\Acrobat\\Acrobat.exe", "Acrobat.exe"),
    ("C:\\Windows\\System32\\cmd.exe", "cmd.exe"),
    ("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "powershell.exe"),
    ("C:\\Program Files\\Microsoft VS Code\\Code.exe", "Code.exe"),
    ("C:\\Windows\\System32\\taskmgr.exe", "taskmgr.exe /4"),
)  # fmt: skip

BENIGN_SERVICES = (
    ("Backup Agent", "C:\\Program Files\\{v}\\Backup\\bagent.exe"),
    ("Monitoring Agent", "C:\\Program Files\\{v}\\Monitor\\magent.exe"),
    ("Endpoint Protection", "C:\\Program Files\\{v}\\Endpoint\\epsvc.exe"),
    ("Print Spooler Helper", "C:\\Program Files\\{v}\\Print\\psh.exe"),
    ("Software Update", "C:\\Program Files (x86)\\{v}\\Update\\updsvc.exe"),
    ("Remote Support", "C:\\Program Files (x86)\\{v}\\Support\\rsupport.exe"),
    ("Inventory Collector", "C:\\Program Files\\{v}\\Inventory\\invsvc.exe"),
    ("VPN Client Service", "C:\\Program Files\\{v}\\VPN\\vpnsvc.exe"),
)  # fmt: skip
VENDOR_WORDS = ("Acme", "Fabrikam", "Contoso", "Northwind", "Tailspin", "Litware", "Proseware",
                "Adatum", "Wingtip", "Fourth Coffee")  # fmt: skip

# Names an implant might take to blend in; the seed picks one and a folder for it.
IMPLANT_SERVICES = (
    "WinHttpAutoProxySync", "MSDTC Helper", "Intel Graphics Helper", "Windows Telemetry Host",
    "Microsoft Office ClickToRun Helper", "Update Orchestrator Helper", "NetSetup Helper",
    "Diagnostics Hub Collector", "Storage Tiers Helper", "Font Cache Helper",
)  # fmt: skip
IMPLANT_DIRS = (
    "C:\\ProgramData\\Microsoft\\Crypto", "C:\\Windows\\Temp", "C:\\ProgramData\\Intel",
    "C:\\Users\\Public\\Libraries", "C:\\Windows\\Tasks", "C:\\ProgramData\\Package Cache",
)  # fmt: skip
SCANNED_USERS = ("admin", "root", "test", "user", "oracle", "postgres", "ubuntu", "guest", "ftp",
                 "git", "pi", "support", "backup", "deploy", "mysql", "tomcat")  # fmt: skip


def pick(rng: np.random.Generator, pool: tuple[str, ...] | list[str]) -> str:
    return pool[int(rng.integers(len(pool)))]


def public_ipv4(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random globally-routable-looking IPv4 addresses (uint32)."""
    out = np.empty(0, dtype=np.uint32)
    while len(out) < n:
        cand = rng.integers(1 << 24, 224 << 24, size=2 * n + 8, dtype=np.uint64).astype(np.uint32)
        first = cand >> 24
        second = (cand >> 16) & 255
        bad = (
            (first == 10)
            | (first == 127)
            | (first == 0)
            | (first == 100) & (second >= 64) & (second < 128)
        )
        bad |= (first == 172) & (second >= 16) & (second < 32)
        bad |= (first == 192) & (second == 168)
        bad |= (first == 169) & (second == 254)
        bad |= (first == 192) & (second == 0) | (first == 198) & ((second == 18) | (second == 19))
        bad |= (first == 198) & (second == 51) | (first == 203) & (second == 0)
        bad |= (cand & 255) == 0
        out = np.concatenate([out, cand[~bad]])
    return out[:n]


def ip_text(value: int) -> str:
    v = int(value)
    return f"{v >> 24 & 255}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}"


def company_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct client company names."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{pick(rng, COMPANY_A)} {pick(rng, COMPANY_B)} {pick(rng, COMPANY_SUFFIX)}"
        if name in seen:
            words = (pick(rng, COMPANY_A), pick(rng, COMPANY_A), pick(rng, COMPANY_B))
            name = f"{' '.join(words)} {pick(rng, COMPANY_SUFFIX)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def defence_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{pick(rng, REGIONS)} {pick(rng, DEFENCE_A)} {pick(rng, DEFENCE_B)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def web_domains(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        a, b = pick(rng, WEB_WORDS), pick(rng, WEB_WORDS)
        host = pick(rng, ("www", "api", "cdn", "static", "login", "app"))
        name = f"{host}.{a}{b}.{pick(rng, TLDS)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names
