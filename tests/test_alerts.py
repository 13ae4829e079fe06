"""Alerts through apprise, received by a real HTTP server on 127.0.0.1: a failed run and new high-severity
suspects are announced, a run without new ones is not, and a broken alert service never fails a run."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import alerts, stages
from pipelines.errors import ConfigError, ExtractError
from pipelines.pipeline import RunConfig
from pipelines.report import format_yuan, load_report
from fraudwatch_synth import generate

AS_OF = date(2026, 1, 31)
BROKEN = Path(__file__).parent / "data" / "ingest" / "broken" / "missing_column"


class Receiver:
    """A local HTTP endpoint that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        received = self.messages = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_port}/fraudwatch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def configure(output: Path, *urls: str, extra: str = "") -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / alerts.CONFIG_FILE).write_text(
        "[alerts]\nurls = [" + ", ".join(json.dumps(u) for u in urls) + "]\n" + extra, encoding="utf-8")


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alerts") / "in"
    generate(persons=200, months=4, seed=5, out=folder)
    return folder


@pytest.mark.slow
def test_new_high_severity_suspects_are_announced_once(landing, receiver, tmp_path, caplog):
    output = tmp_path / "out"
    dead = f"json://127.0.0.1:{closed_port()}/nobody"
    configure(output, dead, receiver.url)
    with caplog.at_level(logging.WARNING, logger="fraudwatch.alerts"):
        first = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    assert any("not accepted" in r.getMessage() for r in caplog.records)  # the dead URL is logged, the run completed

    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["type"] == "warning" and first.run_id in message["title"]
    report = load_report(first.run_dir)
    high = [r for r in report.rules if r.severity == "high" and r.new]
    assert high and f"{sum(r.new for r in high)} new high-severity suspect(s)" in message["title"]
    for rule in high:
        amount = format_yuan(rule.new_amount)
        # certified_after_death is a risk indicator without amounts
        text = f"{amount} 元 at risk" if amount else "no amount at risk (risk indicator)"
        assert f"- {rule.rule_id} (high): {rule.new} new, {text}" in message["message"]
    assert "no amount 元" not in message["message"]
    if any(r.rule_id == "certified_after_death" for r in high):
        assert "- certified_after_death (high): " in message["message"] and "(risk indicator)" in message["message"]
    assert "as of 2026-01-31" in message["message"] and str(first.suspects) in message["message"]
    suspects = pq.read_table(first.suspects, columns=["subject_id", "subject_name"]).to_pylist()
    for row in suspects:  # no personal data
        assert row["subject_id"] not in message["message"] and row["subject_name"] not in message["message"]

    second = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    assert load_report(second.run_dir).total_new == 0
    assert len(receiver.messages) == 1  # nothing new: no alert


@pytest.mark.slow
def test_min_severity_medium_includes_medium_rules(landing, receiver, tmp_path):
    output = tmp_path / "out"
    configure(output, receiver.url, extra='min_severity = "medium"\n')
    stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF, categories=("refund_retained",)))
    assert len(receiver.messages) == 1
    assert "medium-or-higher-severity" in receiver.messages[0]["title"]
    assert "refund_retained (medium)" in receiver.messages[0]["message"]


def test_failed_run_is_announced_and_keeps_its_own_error(receiver, tmp_path):
    landing, output = tmp_path / "in", tmp_path / "out"
    shutil.copytree(BROKEN, landing)
    configure(output, f"json://127.0.0.1:{closed_port()}/nobody", receiver.url)
    with pytest.raises(ExtractError) as raised:
        stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["type"] == "failure" and "FAILED" in message["title"]
    assert "in stage ingest: ExtractError" in message["message"]
    assert raised.value.file and f"Concerning: {raised.value.file}" in message["message"]
    assert raised.value.message not in message["message"]  # the error's text can quote data: never sent


def test_nothing_sent_without_configuration(receiver, tmp_path):
    landing = tmp_path / "in"
    shutil.copytree(BROKEN, landing)
    with pytest.raises(ExtractError):
        stages.run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=AS_OF))
    assert receiver.messages == []


def test_bad_configuration_is_refused_with_the_file_and_never_fails_a_run(receiver, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / alerts.CONFIG_FILE).write_text("[alerts]\nurl = 'json://x'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key.*url") as raised:
        alerts.load_config(output)
    assert raised.value.file == str(output / alerts.CONFIG_FILE)
    (output / alerts.CONFIG_FILE).write_text("[alerts]\nurls = ['json://x']\nmin_severity = 'urgent'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="min_severity"):
        alerts.load_config(output)
    assert alerts.after_failure("r1", output, "ingest", RuntimeError("x")) is None  # logged, not raised
    configure(output, "nonsense://", receiver.url)
    assert alerts.check_config(alerts.load_config(output)) == ["alert URL #1 (nonsense://…) is not a valid apprise URL"]
    assert alerts.after_failure("r1", output, "ingest", RuntimeError("x")) is False
    assert len(receiver.messages) == 1  # the valid URL still got it
