"""Where the time goes between a slider event and the new picture, stage by stage.

The browser side records, in epoch milliseconds (performance.timeOrigin + now): every pointer
or key event, every widget message the frontend sends to the kernel, every widget message
with a binary buffer (a PNG) that arrives from the kernel, every change of a panel image's
src and every image load (decoded). The kernel side (fmlib.widgets, when $FMLIB_PANEL_TRACE
names a file) writes JSON lines: `asked` (the slider message handled: its id and values),
`shown` (a picture set on screen: when its draw started, its maths / raster / PNG seconds,
its byte size, when it was sent) and `ahead` (a frame drawn ahead). Both clocks are the
machine's wall clock, so one move's final value can be followed end to end:

    event -> send        the frontend (noUiSlider -> widget model -> comm; ipywidgets sends
                         at most one message per widget until the kernel is idle again)
    reply in transit     of which: the kernel's "idle" after the previous value, from its
                         making in the kernel to its arrival in the browser (blank when the
                         value did not wait for it)
    send -> handled      websocket + server + the kernel taking the message
    handled -> start     waiting for the frame being drawn (a previous value, or a frame
                         drawn ahead)
    maths, raster, PNG   the draw itself (0 when the picture came from the cache)
    sent -> received     kernel -> browser
    received -> swap     the frontend handling the message (JupyterLab's message chain,
                         the Image view)
    swap -> loaded       the browser decoding the PNG

Reported, never asserted (a time measures the machine and its load).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

JS_INSTALL = """() => {
    const nb = window.jupyterapp.shell.currentWidget;
    const kernel = nb.sessionContext.session.kernel;
    const now = () => performance.timeOrigin + performance.now();
    const trace = { events: [], sends: [], recvs: [], swaps: [], loads: [], idles: [] };
    window.__uiStages = trace;
    if (window.__uiStagesKernel === kernel) return;
    window.__uiStagesKernel = kernel;
    for (const type of ["pointermove", "pointerup", "keydown"])
        document.addEventListener(type, () => window.__uiStages.events.push(now()), true);
    kernel.anyMessage.connect((_, args) => {
        const m = args.msg, t = now(), tr = window.__uiStages;
        if (m.header.msg_type === "status" && args.direction === "recv") {
            if (m.content.execution_state === "idle") tr.idles.push([t, m.header.date]);
            return;
        }
        if (m.header.msg_type !== "comm_msg") return;
        if (args.direction === "send" && m.content.data && m.content.data.method === "update")
            tr.sends.push([t, m.header.msg_id, JSON.stringify(m.content.data.state)]);
        else if (args.direction === "recv" && m.buffers && m.buffers.length)
            tr.recvs.push([t, m.header.date,
                           m.buffers.reduce((n, b) => n + (b.byteLength ?? b.length ?? 0), 0)]);
    });
    const observer = new MutationObserver((records) => {
        for (const r of records) if (r.target.tagName === "IMG")
            window.__uiStages.swaps.push([now(), r.target.src]);
    });
    observer.observe(document.querySelector(".jp-Notebook"),
                     { attributes: true, attributeFilter: ["src"], subtree: true });
    document.addEventListener("load", (e) => {
        if (e.target.tagName === "IMG") window.__uiStages.loads.push([now(), e.target.src]);
    }, true);
}"""
JS_NOW = "() => performance.timeOrigin + performance.now()"
JS_TAKE = "() => { const t = window.__uiStages; return t; }"

STAGES = (
    "event -> send",
    "reply in transit",
    "send -> handled",
    "handled -> start",
    "maths",
    "raster",
    "PNG",
    "sent -> received",
    "received -> swap",
    "swap -> loaded",
    "total",
)
HEADER = [
    "| notebook | slider | how | " + " | ".join(STAGES) + " | frames drawn ahead while waiting |",
    "|---|---|---|" + "---|" * (len(STAGES) + 1),
]


@dataclass
class Breakdown:
    """Milliseconds per stage for the final value of one move (None: not observed)."""

    stages: dict[str, float | None]
    ahead_waited: int  # frames drawn ahead between the kernel handling the value and its draw


def kernel_events(path: Path, since_s: float) -> list[dict]:
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e.get("t", e.get("t0", 0)) >= since_s - 1]


def breakdown(browser: dict, kernel: list[dict], start_ms: float) -> Breakdown | None:
    """Follow the last value the frontend sent after start_ms to its loaded picture."""
    sends = [s for s in browser["sends"] if s[0] >= start_ms]
    asked = {e["msg"]: e for e in kernel if e["ev"] == "asked"}
    sends = [s for s in sends if s[1] in asked]
    if not sends:
        return None
    t_send, msg_id, _ = sends[-1]
    ask = asked[msg_id]
    key = json.dumps(ask["key"])
    shown = [
        e
        for e in kernel
        if e["ev"] == "shown" and json.dumps(e["key"]) == key and e["t0"] >= ask["t"] - 1e-3
    ]
    if not shown:
        return None
    show = shown[0]
    events = [t for t in browser["events"] if t <= t_send]
    t_event = events[-1] if events else None
    recv = [r for r in browser["recvs"] if r[0] >= show["t1"] * 1000 - 5 and r[2] == show["n"]]
    t_recv = recv[0][0] if recv else None
    swaps = [s for s in browser["swaps"] if t_recv is not None and s[0] >= t_recv]
    t_swap, src = (swaps[0][0], swaps[0][1]) if swaps else (None, None)
    loads = [x for x in browser["loads"] if src is not None and x[1] == src and x[0] >= t_swap]
    t_load = loads[0][0] if loads else None
    ms = lambda s: None if s is None else 1000 * s  # noqa: E731
    # the reply the value waited for: the last "idle" to arrive between its event and its send
    idles = [
        i for i in browser.get("idles", []) if t_event is not None and t_event < i[0] <= t_send
    ]
    made = datetime.fromisoformat(idles[-1][1]).timestamp() * 1000 if idles else None
    diff = lambda a, b: None if a is None or b is None else b - a  # noqa: E731
    stages = {
        "event -> send": diff(t_event, t_send),
        "reply in transit": diff(made, idles[-1][0]) if idles else None,
        "send -> handled": diff(t_send, ms(ask["t"])),
        "handled -> start": diff(ms(ask["t"]), ms(show["t0"])),
        "maths": ms(show.get("maths", 0.0)),
        "raster": ms(show.get("raster", 0.0)),
        "PNG": ms(show.get("png", 0.0)),
        "sent -> received": diff(ms(show["t1"]), t_recv),
        "received -> swap": diff(t_recv, t_swap),
        "swap -> loaded": diff(t_swap, t_load),
        "total": diff(t_event, t_load),
    }
    ahead = [
        e for e in kernel if e["ev"] == "ahead" and e["t1"] > ask["t"] and e["t0"] < show["t0"]
    ]
    return Breakdown(stages, len(ahead))


def row(notebook: str, slider: str, how: str, b: Breakdown | None) -> str:
    if b is None:
        return f"| {notebook} | {slider} | {how} | " + " | ".join("?" * len(STAGES)) + " | |"
    cells = ["" if v is None else f"{v:.0f}" for v in b.stages.values()]
    return f"| {notebook} | {slider} | {how} | " + " | ".join(cells) + f" | {b.ahead_waited} |"


def summary(rows: list[Breakdown]) -> list[str]:
    """Median and worst of each stage over the moves."""
    out = []
    for name, pick in (("median", statistics.median), ("worst", max)):
        cells = []
        for stage in STAGES:
            values = [b.stages[stage] for b in rows if b.stages[stage] is not None]
            cells.append(f"{pick(values):.0f}" if values else "")
        waited = [b.ahead_waited for b in rows]
        cells.append(f"{pick(waited):g}" if waited else "")
        out.append(f"| **{name}** | | | " + " | ".join(cells) + " |")
    return out
