"""artifacts/ui/latency.md as tests/ui writes it and benchmarks/browser_rates.py reads it: the
rates section ends where the per-stage section begins."""

import importlib.util
from pathlib import Path

from ui import stages
from ui.config import latency_text

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "browser_rates", ROOT / "benchmarks" / "browser_rates.py"
)
browser_rates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_rates)


def test_browser_rates_reads_only_the_rates_and_the_stages_have_a_summary():
    live = "| 03_x | 0 | t | drag | 16 | 11 | 2.2 | 7.2 | 5.0 | 0 | yes |"
    b = stages.Breakdown(dict.fromkeys(stages.STAGES, 10.0), ahead_waited=1)
    text = latency_text([], [live], [(stages.row("03_x", "t", "drag", b), b)])
    rows = browser_rates.live_rows(text)
    assert [r["fps"] for r in rows] == ["5.0"] and not browser_rates.meets_goal(rows[0])
    assert "| **median** | | | 10 | 10 |" in text and "| **worst** |" in text


def test_a_move_is_followed_from_the_event_to_the_decoded_picture():
    """Synthetic traces (ms in the browser, s in the kernel): each stage is the gap between
    the matched events, and a frame drawn ahead during the wait is counted."""
    key = [["sigma_min", 0.3]]
    kernel = [
        {"ev": "asked", "t": 10.010, "msg": "m2", "key": key},
        {"ev": "ahead", "key": [["sigma_min", 0.2]], "t0": 10.000, "t1": 10.030},
        {
            "ev": "shown",
            "key": key,
            "t0": 10.030,
            "t1": 10.090,
            "t2": 10.091,
            "n": 500,
            "maths": 0.02,
            "raster": 0.03,
            "png": 0.01,
        },
    ]
    browser = {
        "events": [9990.0, 10000.0],
        "sends": [[9995.0, "m1", "{}"], [10004.0, "m2", "{}"]],
        "recvs": [[10080.0, "", 400], [10095.0, "", 500]],
        "swaps": [[10097.0, "blob:1"]],
        "loads": [[10099.0, "blob:1"]],
        # the previous value's "idle", made at 9.990 s in the kernel, came 3 ms after the event
        "idles": [[9997.0, "1970-01-01T00:00:09.985Z"], [10003.0, "1970-01-01T00:00:09.990Z"]],
    }
    b = stages.breakdown(browser, kernel, start_ms=9980.0)
    got = {k: round(v) for k, v in b.stages.items()}
    assert got == {
        "event -> send": 4,
        "reply in transit": 13,
        "send -> handled": 6,
        "handled -> start": 20,
        "maths": 20,
        "raster": 30,
        "PNG": 10,
        "sent -> received": 5,
        "received -> swap": 2,
        "swap -> loaded": 2,
        "total": 99,
    }
    assert b.ahead_waited == 1
    # a value sent at once (no reply arrived between its event and its send): no transit
    browser["idles"] = [[9997.0, "1970-01-01T00:00:09.985Z"]]
    assert stages.breakdown(browser, kernel, start_ms=9980.0).stages["reply in transit"] is None


def test_browser_rates_holds_every_moves_end_to_end_time_to_the_goal():
    """make bench's browser latency: each move's final value, event -> decoded picture, within
    0.1 s; one slow move misses the goal even when the median is well within it."""
    fast = stages.Breakdown(dict.fromkeys(stages.STAGES, 10.0) | {"total": 60.0}, 0)
    slow = stages.Breakdown(dict.fromkeys(stages.STAGES, 10.0) | {"total": 150.0}, 1)
    moves = [fast, fast, slow]
    text = latency_text([], [], [(stages.row("07_x", "σ_min", "drag", b), b) for b in moves])
    lines, ok = browser_rates.latency_report(text)
    assert not ok
    assert any("07_x" in line and "150 ms" in line and "MISSED" in line for line in lines)
    assert lines[-1].endswith("2 of 3 moves")
    text = latency_text([], [], [(stages.row("07_x", "σ_min", "drag", b), b) for b in moves[:2]])
    assert browser_rates.latency_report(text)[1]
