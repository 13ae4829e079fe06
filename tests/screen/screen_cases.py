"""Hand-made screening cases: a tiny audit landing folder and a January 2025 payroll with every
hold reason and its near misses (expected holds in EXPECTED)."""

from __future__ import annotations

import csv
from pathlib import Path

_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def pid(region: str, birth: str, seq: str) -> str:
    """A valid 18-character ID (GB 11643 check character)."""
    body = region + birth + seq
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W)) % 11]


def broken(valid: str) -> str:
    """The same ID with a wrong check character."""
    return valid[:17] + ("0" if valid[17] != "0" else "1")


DEAD = pid("110101", "19450101", "011")           # died 2024-12-15: January is improper
DEAD_JAN = pid("110101", "19450202", "013")       # died 2025-01-10: January (the death month) is payable
DEAD_ARREARS = pid("110101", "19450303", "015")   # died 2024-12-05: arrears for September are fine
WEAK = pid("110101", "19500315", "017")           # death record carries a broken ID; name + birth match
PRISON = pid("320102", "19550505", "019")         # serving since 2024-06
RELEASED = pid("320102", "19560606", "021")       # released 2024-12-20, before the period
PROBATION = pid("320102", "19570707", "023")      # 缓刑 does not stop pensions
ADMITTED_JAN = pid("320102", "19580808", "025")   # admitted 2025-01-05: the admission month is payable
TWO_REGIONS = pid("310101", "19480909", "027")    # paid by 310101 since 2024-10; 110105 pays January too (in file)
ARREARS_REGION = pid("310101", "19491010", "029")  # 310101 paid December; 440300 pays December as arrears
MOVED = pid("310101", "19501111", "031")          # 310101 stopped in November; 440300 pays from January
TWO_SCHEMES = pid("440300", "19511212", "033")    # 110 and 170 in January
RESIDENT_ONLY = pid("440300", "19520101", "035")  # 110 stopped in December; 170 in January only
LINKED = pid("110105", "19530202", "037")         # also paid under a typo of the ID
LINKED_TYPO = broken(LINKED)
LINKED_ALONE = pid("110105", "19540303", "039")   # linked typo not in the payroll
LINKED_ALONE_TYPO = broken(LINKED_ALONE)
TWICE = pid("110105", "19550404", "041")          # the same period twice in the file, same region
ARREARS_TWICE = pid("110105", "19560505", "043")  # September arrears and January: two periods
DEAD_TWO_REGIONS = pid("110101", "19440606", "045")  # dead and paid by two regions
REVERSED = pid("110101", "19430707", "047")       # dead; the payroll reverses a payment
# invalid IDs are identifiers: the same invalid ID in the death/prison record and the payroll
DEAD_INVALID = broken(pid("110101", "19420808", "049"))   # died 2024-12-02 under this invalid ID
PRISON_INVALID = broken(pid("320102", "19590909", "053"))  # serving since 2024-07 under this invalid ID
REGIONS_INVALID = broken(pid("310101", "19471212", "055"))  # paid by 310101 since 2024-10; 110105 pays January too
# paid under a typo of a dead person's ID: the audit linked the typo to him (one person)
DEAD_TYPO_OWNER = pid("110101", "19410909", "057")        # registered; died 2024-11-10
DEAD_TYPO = broken(DEAD_TYPO_OWNER)                        # paid under this typo from November on
# the death recorded under a typo of the ID that was itself paid once (linked): the owner's pension stops
TYPO_DEATH_OWNER = pid("110101", "19400101", "059")       # registered; paid October and December
TYPO_DEATH = broken(TYPO_DEATH_OWNER)                      # paid November; died 2024-12-03 under this ID
# paid by a second region under a typo of the ID, new in the payroll: one person paid by two regions
REGIONS_TWO_IDS = pid("310101", "19460101", "061")        # 310101 since October
REGIONS_TWO_IDS_TYPO = broken(REGIONS_TWO_IDS)            # 440300 pays January under this typo
# near miss: a registered namesake born the same day, ID one digit away from a dead man's: never one person
NAMESAKE = pid("110101", "19450101", "019")               # 张一 like DEAD, alive

NAMES = {DEAD: "张一", DEAD_JAN: "张二", DEAD_ARREARS: "张三", WEAK: "王伟", PRISON: "李一", RELEASED: "李二",
         PROBATION: "李三", ADMITTED_JAN: "李四", TWO_REGIONS: "赵一", ARREARS_REGION: "赵二", MOVED: "赵三",
         TWO_SCHEMES: "钱一", RESIDENT_ONLY: "钱二", LINKED: "孙一", LINKED_TYPO: "孙一", LINKED_ALONE: "孙二",
         LINKED_ALONE_TYPO: "孙二", TWICE: "周一", ARREARS_TWICE: "周二", DEAD_TWO_REGIONS: "吴一", REVERSED: "吴二",
         DEAD_INVALID: "郑一", PRISON_INVALID: "郑二", REGIONS_INVALID: "郑三", DEAD_TYPO_OWNER: "冯一", DEAD_TYPO: "冯一",
         NAMESAKE: "张一", TYPO_DEATH_OWNER: "褚一", TYPO_DEATH: "褚一", REGIONS_TWO_IDS: "卫一",
         REGIONS_TWO_IDS_TYPO: "卫一"}
# IDs the household register does not carry (typos, invalid IDs)
UNREGISTERED = (LINKED_TYPO, LINKED_ALONE_TYPO, DEAD_INVALID, PRISON_INVALID, REGIONS_INVALID, DEAD_TYPO, TYPO_DEATH,
                REGIONS_TWO_IDS_TYPO)
AUDIT_MONTHS = ("2024-10", "2024-11", "2024-12")
# pensioners with nothing to find (a payroll is mostly valid IDs: the contract wants 90 %)
BACKGROUND = {pid("530102", f"19600{1 + i // 28}{1 + i % 28:02d}", "071"): f"何{'甲乙丙丁戊己庚辛壬癸'[i % 10]}{'一二三四五'[i // 10]}"
              for i in range(50)}
HEAD = ["payment_id", "person_id", "name", "scheme", "region_code", "period", "amount", "pay_date"]


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _audit_payments() -> list[list]:
    rows = []
    monthly = {p: ("110", p[:6]) for p in NAMES}
    monthly[TWO_SCHEMES] = ("110", "440300")
    monthly[RESIDENT_ONLY] = ("110", "440300")
    for person, (scheme, region) in monthly.items():
        months = AUDIT_MONTHS
        if person in (MOVED,):
            months = ("2024-10", "2024-11")
        if person == RESIDENT_ONLY:
            months = AUDIT_MONTHS
        if person == DEAD_TYPO_OWNER:
            months = ("2024-10",)
        if person == DEAD_TYPO:
            months = ("2024-11", "2024-12")
        if person == TYPO_DEATH_OWNER:
            months = ("2024-10", "2024-12")
        if person == TYPO_DEATH:
            months = ("2024-11",)
        if person == REGIONS_TWO_IDS_TYPO:
            months = ()
        for m in months:
            rows.append([f"W{len(rows):04d}", person, NAMES[person], scheme, region, m, "2000.00", f"{m}-10"])
    for person, name in BACKGROUND.items():
        rows += [[f"W{len(rows):04d}", person, name, "110", "530102", m, "1500.00", f"{m}-10"] for m in AUDIT_MONTHS]
    return rows


# The payroll for January 2025: payment id -> (person, scheme, region, period, amount); expected holds below.
PAYROLL = {
    "J01": (DEAD, "110", "110101", "2025-01", "2000.00"),
    "J02": (DEAD_JAN, "110", "110101", "2025-01", "2000.00"),
    "J03": (DEAD_ARREARS, "110", "110101", "2024-09", "150.00"),
    "J04": (WEAK, "110", "110101", "2025-01", "2000.00"),
    "J05": (PRISON, "110", "320102", "2025-01", "2000.00"),
    "J06": (RELEASED, "110", "320102", "2025-01", "2000.00"),
    "J07": (PROBATION, "110", "320102", "2025-01", "2000.00"),
    "J08": (ADMITTED_JAN, "110", "320102", "2025-01", "2000.00"),
    "J09": (TWO_REGIONS, "110", "310101", "2025-01", "2000.00"),
    "J10": (TWO_REGIONS, "110", "110105", "2025-01", "1800.00"),
    "J11": (ARREARS_REGION, "110", "440300", "2024-12", "2100.00"),
    "J12": (MOVED, "110", "440300", "2025-01", "2000.00"),
    "J13": (TWO_SCHEMES, "110", "440300", "2025-01", "2000.00"),
    "J14": (TWO_SCHEMES, "170", "440300", "2025-01", "180.00"),
    "J15": (RESIDENT_ONLY, "170", "440300", "2025-01", "180.00"),
    "J16": (LINKED, "110", "110105", "2025-01", "2000.00"),
    "J17": (LINKED_TYPO, "110", "110105", "2025-01", "2000.00"),
    "J18": (LINKED_ALONE, "110", "110105", "2025-01", "2000.00"),
    "J19": (TWICE, "110", "110105", "2025-01", "2000.00"),
    "J20": (TWICE, "110", "110105", "2025-01", "2000.00"),
    "J21": (ARREARS_TWICE, "110", "110105", "2024-09", "2000.00"),
    "J22": (ARREARS_TWICE, "110", "110105", "2025-01", "2000.00"),
    "J23": (DEAD_TWO_REGIONS, "110", "110101", "2025-01", "2000.00"),
    "J24": (DEAD_TWO_REGIONS, "110", "320102", "2025-01", "2000.00"),
    "J25": (REVERSED, "110", "110101", "2024-12", "-2000.00"),
    "J26": (DEAD_INVALID, "110", "110101", "2025-01", "2000.00"),
    "J27": (PRISON_INVALID, "110", "320102", "2025-01", "2000.00"),
    "J28": (REGIONS_INVALID, "110", "110105", "2025-01", "1900.00"),
    "J29": (DEAD_TYPO, "110", "110101", "2025-01", "2000.00"),
    "J30": (NAMESAKE, "110", "110101", "2025-01", "2000.00"),
    "J31": (REGIONS_INVALID, "110", "310101", "2025-01", "2000.00"),
    "J32": (TYPO_DEATH_OWNER, "110", "110101", "2025-01", "2000.00"),
    "J33": (REGIONS_TWO_IDS, "110", "310101", "2025-01", "2000.00"),
    "J34": (REGIONS_TWO_IDS_TYPO, "110", "440300", "2025-01", "2000.00"),
}
EXPECTED = {
    "J01": ("paid_after_death", "high"),
    "J04": ("paid_after_death", "medium"),
    "J05": ("paid_during_imprisonment", "high"),
    "J10": ("duplicate_cross_region", "high"),
    "J11": ("duplicate_cross_region", "high"),
    "J14": ("duplicate_cross_scheme", "high"),
    "J17": ("duplicate_identity", "high"),
    "J20": ("duplicate_payment_same_period", "medium"),
    "J23": ("paid_after_death", "high"),
    "J24": ("paid_after_death", "high"),
    "J26": ("paid_after_death", "high"),
    "J27": ("paid_during_imprisonment", "high"),
    "J28": ("duplicate_cross_region", "high"),
    "J29": ("paid_after_death", "high"),
    "J32": ("paid_after_death", "high"),
    "J34": ("duplicate_cross_region", "high"),
}
BAD_ROWS = [
    ["J90", "", "无号", "110", "110101", "2025-01", "2000.00", ""],          # missing person_id
    ["J91", TWICE, "周一", "110", "110101", "2025-01", "12.3.4", ""],       # unreadable amount
    ["J01", DEAD, "张一", "110", "110101", "2025-01", "2000.00", ""],        # payment id repeated
]


