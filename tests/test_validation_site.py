"""The offline validation report site, opened in headless Chromium without a network, built from a run whose
extracts carry hostile values (IDs, file names, record ids made of HTML/script): the run list renders, the
values show as text, and the DOM has no element or attribute the data put there."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from pipelines import stages, validation_site
from pipelines.pipeline import RunConfig
from fraudwatch_synth import generate

CHROMIUM = "/usr/bin/chromium"
AS_OF = date(2026, 1, 31)
# upper case and without spaces: ingest upper-cases IDs and takes inner spaces out; still live HTML
# (an <img> with an onerror handler)
IMG = "<IMG/SRC/ONERROR=ALERT(1)>"
SCRIPT = "</script><script>alert(2)</script>"
ATTR = '"onmouseover=alert(3) x="'
HOSTILE_FILE = 'deaths_<svg onload=alert(4)>"onmouseover=alert(5)".csv'
LIVE_TAGS = {"script", "img", "svg", "iframe", "object", "embed", "image", "video", "audio", "math", "form"}

pytestmark = pytest.mark.slow


def chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with no network: in an empty network namespace where the system allows one,
    otherwise with every host name unresolvable and a dead proxy."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={user_dir}"]
    offline = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"]
    isolated = subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    command = (["unshare", "-rn"] if isolated else []) + base + ([] if isolated else offline) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


class DomScan(HTMLParser):
    """Every element and attribute of a page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.rows: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag == "tr" and any(name == "data-run-id" for name, _ in attrs):
            self.rows.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


def scan(html: str) -> DomScan:
    parser = DomScan()
    parser.feed(html)
    return parser


def assert_no_live_markup(dom: DomScan) -> None:
    assert not LIVE_TAGS & set(dom.tags), sorted(LIVE_TAGS & set(dom.tags))
    assert [a for a in dom.attrs if a[1].startswith("on")] == []
    for tag, name, value in dom.attrs:  # nothing fetched or linked from outside the output folder
        if name in ("href", "src", "action", "formaction", "srcset", "poster", "data"):
            assert value and "://" not in value and not value.startswith(("//", "javascript:", "data:")), (tag, name, value)


@pytest.fixture(scope="module")
def hostile_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    landing, output = root / "in", root / "out"
    generate(persons=400, months=4, seed=9, out=landing)
    deaths = pl.read_csv(landing / "deaths.csv", infer_schema=False)
    row = pl.int_range(pl.len())
    deaths = deaths.with_columns(
        pl.when(row < 1).then(pl.lit(IMG)).otherwise(pl.col("person_id")).alias("person_id"),
        pl.when(row < 2).then(pl.lit(SCRIPT)).otherwise(pl.col("name")).alias("name"),
    )
    payments = pl.read_csv(landing / "pension_payments_202401.csv", infer_schema=False)
    payments = payments.with_columns(  # a duplicated hostile payment id: the unique check and GE quote it
        pl.when(pl.int_range(pl.len()) < 2).then(pl.lit(ATTR)).otherwise(pl.col("payment_id")).alias("payment_id"))
    payments.write_csv(landing / "pension_payments_202401.csv")
    half = deaths.height // 2
    deaths.head(half).write_csv(landing / "deaths.csv")
    deaths.tail(deaths.height - half).write_csv(landing / HOSTILE_FILE)
    summary = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))

    # A failed run as the service keeps it (failed/<run_id>/ with its validation JSON and the error).
    failed = output / validation_site.FAILED_DIR / "20260101T000000.000Z"
    shutil.copytree(summary.run_dir / "validation", failed / "validation")
    (failed / "error.json").write_text(json.dumps({"message": f"deaths: broken {IMG} {SCRIPT} {ATTR}"}), encoding="utf-8")
    validation_site.build_site(output)
    return output, summary


def test_run_writes_the_site_and_keeps_ge_json(hostile_output):
    output, summary = hostile_output
    assert validation_site.site_index(output).is_file()
    assert validation_site.run_page(output, summary.run_id).is_file()
    assert (summary.run_dir / "validation" / "validation" / "deaths.ge.json").is_file()  # GE's own results
    assert not (summary.run_dir / "validation" / "data_docs").exists()  # no CDN-bound GE Data Docs any more


def test_site_renders_offline_in_chromium_with_every_run(hostile_output, tmp_path):
    output, summary = hostile_output
    index = validation_site.site_index(output)
    done = chromium("--dump-dom", index.as_uri(), user_dir=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = scan(done.stdout)
    runs = {r["data-run-id"]: r["class"] for r in dom.rows}
    assert runs == {summary.run_id: "warn", "20260101T000000.000Z": "failed"}  # failed run highlighted
    assert_no_live_markup(dom)
    shot = tmp_path / "index.png"
    done = chromium("--screenshot=" + str(shot), "--window-size=1400,500", index.as_uri(), user_dir=tmp_path / "profile")
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("run", ["complete", "failed"])
def test_hostile_values_are_text_never_markup(hostile_output, tmp_path, run):
    output, summary = hostile_output
    run_id = summary.run_id if run == "complete" else "20260101T000000.000Z"
    page = validation_site.run_page(output, run_id)
    done = chromium("--dump-dom", page.as_uri(), user_dir=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = scan(done.stdout)
    assert_no_live_markup(dom)
    text = "".join(dom.text)
    assert "deaths" in text and "pension_payments" in text and "expect_column_values_to_be_unique" in text
    assert IMG in text  # the hostile ID is shown, as text (a GE example)
    assert HOSTILE_FILE in text  # the hostile file name, as text
    assert ATTR in text  # the duplicated hostile payment id (unique check, GE examples)
    if run == "failed":
        assert f"deaths: broken {IMG} {SCRIPT} {ATTR}" in text


def test_every_written_html_file_escapes(hostile_output):
    """Without a browser too: no file of the site contains a raw hostile tag."""
    output, _ = hostile_output
    pages = list((output / validation_site.SITE_DIR).rglob("*.html"))
    assert len(pages) == 3
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<IMG" not in html and "<svg" not in html and "<script" not in html.lower()
        assert_no_live_markup(scan(html))
