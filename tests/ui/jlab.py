"""Drive a JupyterLab notebook page like a student: open, Run All, read outputs, move sliders.

The page must come from a server started with --LabApp.expose_app_in_browser=True, so that
`window.jupyterapp` (the JupyterLab application) can be asked for the kernel status and the
cells' models. Clicks, drags and key presses go through the real UI.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Console errors that are not the course's fault. Keep this list short; justify each entry.
BENIGN_CONSOLE: list[str] = [
    # JupyterLab's debugger extension asks a new kernel for its debug state; "Restart and
    # run all" (the lecture test) can restart the kernel before that reply, and the
    # extension logs this. A race inside JupyterLab 4.6, seen once in CI; the lecture is
    # unaffected (Run All's outputs and the slider are checked separately).
    r"Could not restore the debugger state: Canceled future for debug_request message",
]


def real_console_errors(console: list[str]) -> list[str]:
    """The console errors left after dropping the benign ones above."""
    return [c for c in console if not any(re.search(p, c) for p in BENIGN_CONSOLE)]


# The current notebook panel, its kernel connection and its non-empty code cells.
_NOTEBOOK = """
const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const kernel = nb && nb.sessionContext && nb.sessionContext.session
    ? nb.sessionContext.session.kernel : null;
const codeCells = nb && nb.content ? nb.content.widgets.filter(
    (c) => c.model.type === "code" && c.model.sharedModel.getSource().trim() !== "") : [];
"""

JS_READY = f"""(path) => {{ {_NOTEBOOK}
    return !!nb && !!nb.context && nb.context.path === path && nb.context.isReady
        && !!kernel && kernel.connectionStatus === "connected" && kernel.status === "idle";
}}"""

JS_IDLE = f"""() => {{ {_NOTEBOOK} return !!kernel && kernel.status === "idle"; }}"""

# Run All is over when the kernel is idle, no prompt shows [*] and every code cell has an
# execution count (or a cell failed: JupyterLab then drops the queued cells).
JS_RUN_ALL_DONE = f"""() => {{ {_NOTEBOOK}
    if (!kernel || kernel.status !== "idle") return false;
    const prompts = [...document.querySelectorAll(".jp-Notebook .jp-InputPrompt")];
    if (prompts.some((p) => p.textContent.includes("*"))) return false;
    const failed = codeCells.some(
        (c) => c.model.outputs.toJSON().some((o) => o.output_type === "error"));
    return failed || codeCells.every((c) => c.model.executionCount !== null);
}}"""

JS_EXECUTION_COUNTS = f"""() => {{ {_NOTEBOOK}
    return codeCells.map((c) => c.model.executionCount);
}}"""

JS_STATE = f"""() => {{ {_NOTEBOOK}
    const prompts = [...document.querySelectorAll(".jp-Notebook .jp-InputPrompt")];
    return {{ kernel: kernel ? kernel.status : null,
              counts: codeCells.map((c) => c.model.executionCount),
              running: prompts.filter((p) => p.textContent.includes("*")).length }};
}}"""

# Error outputs only: tracebacks in cell outputs (from the models) and in Output widgets,
# and widget views that failed to render. Warnings and tqdm bars on stderr are fine.
# textContent, not innerText: it needs no layout and reads the cells the browser skips off
# screen (JupyterLab's default windowing mode).
JS_ERRORS = f"""() => {{ {_NOTEBOOK}
    const errors = [];
    const ANSI = new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g");
    nb.content.widgets.forEach((cell, i) => {{
        if (cell.model.type !== "code") return;
        for (const o of cell.model.outputs.toJSON())
            if (o.output_type === "error") errors.push(`cell ${{i}}: ${{o.ename}}: ${{o.evalue}} `
                + o.traceback.join(String.fromCharCode(10)).replace(ANSI, "").slice(-1500));
    }});
    for (const el of document.querySelectorAll(".jp-Notebook .widget-output .jp-OutputArea-output"))
        if (el.textContent.includes("Traceback (most recent call last)"))
            errors.push("traceback in a widget output: " + el.textContent.slice(0, 1500));
    for (const el of document.querySelectorAll(".jp-Notebook .jp-OutputArea-output"))
        if (el.textContent.includes("Error displaying widget"))
            errors.push("widget view: " + el.textContent.slice(0, 300));
    return errors;
}}"""

# A panel is the innermost widget box holding a slider and a figure (panel() shows an Image
# widget; interact() an <img> in an Output widget). Each gets data-ui-panel="<index>".
IMG = "img.widget-image, .widget-output img"
JS_TAG_PANELS = """() => {
    const boxes = [...document.querySelectorAll(".jp-Notebook .widget-box")].filter(
        (b) => b.querySelector(".widget-slider") && b.querySelector("__IMG__"));
    const inner = boxes.filter((b) => !boxes.some((o) => o !== b && b.contains(o)));
    inner.forEach((b, i) => b.setAttribute("data-ui-panel", String(i)));
    return inner.length;
}""".replace("__IMG__", IMG)

# Watch a panel's figure: every new picture shown, t0 = the next pointerup/keydown (the
# release of a drag, a key press), or `error` = a traceback. A picture counts as shown at the
# first animation frame after its <img> loaded (one not current by then never reached the
# screen). The watch only listens (a MutationObserver, the load event, one animation frame
# per picture) and reads textContent: a poll every frame that reads innerText kept the page
# drawing and laying out 60 times a second (Chromium's trace, session 11), work of the
# observer that a student's browser does not do.
JS_WATCH = """(index) => {
    const panel = document.querySelector(`[data-ui-panel="${index}"]`);
    const img = () => panel.querySelector("__IMG__");
    const first = img() ? img().src : null;
    const readouts = () => [...panel.querySelectorAll(".widget-readout")].map((r) => r.textContent)
        .join("|");
    const watch = { t0: null, first, last: first, changes: [], error: null,
                    readout: readouts(), readoutAt: null, asked: [] };
    if (window.__uiWatch && window.__uiWatch.stop) window.__uiWatch.stop();
    window.__uiWatch = watch;
    if (!window.__uiListening) {
        window.__uiListening = true;
        const stamp = () => { if (window.__uiWatch && window.__uiWatch.t0 === null)
            window.__uiWatch.t0 = performance.now(); };
        document.addEventListener("pointerup", stamp, true);
        document.addEventListener("keydown", stamp, true);
    }
    const changed = () => {
        const text = panel.textContent;
        if (text.includes("redraw failed") || text.includes("Traceback (most recent call"))
            watch.error = text.slice(0, 2000);
        const now = readouts();
        if (now !== watch.readout) {
            watch.readout = now;
            watch.readoutAt = performance.now();
            watch.asked.push(watch.readoutAt);
        }
    };
    const loaded = (e) => {
        const el = e.target;
        if (el.tagName !== "IMG" || !el.src || el.src === watch.last) return;
        requestAnimationFrame(() => {
            const now = img();
            if (now !== el || now.src !== el.src || el.src === watch.last) return;
            watch.last = el.src;
            watch.changes.push(performance.now());
        });
    };
    const observer = new MutationObserver(changed);
    observer.observe(panel, { subtree: true, childList: true, characterData: true });
    panel.addEventListener("load", loaded, true);
    watch.stop = () => { observer.disconnect(); panel.removeEventListener("load", loaded, true); };
}""".replace("__IMG__", IMG)

# Settled: the key/pointer event happened, and neither the picture nor a readout changed for
# SETTLE_MS since (Play keeps changing the readout after its click).
SETTLE_MS = 600
JS_WATCH_DONE = """() => {
    const w = window.__uiWatch, now = performance.now();
    if (w.error !== null) return true;
    if (w.t0 === null) return false;
    const last = w.changes.length ? w.changes[w.changes.length - 1] : null;
    const quiet = now - Math.max(w.t0, last ?? 0, w.readoutAt ?? 0) > __SETTLE_MS__;
    return quiet && last !== null;
}""".replace("__SETTLE_MS__", str(SETTLE_MS))
# From the last input (the release, the key press, or Play's last step: the last readout
# change) to the last picture; 0 when it was already drawn.
JS_LATENCY_MS = """() => { const w = window.__uiWatch;
    return Math.max(0, w.changes.at(-1) - Math.max(w.t0, w.readoutAt ?? 0)); }"""
# Pictures shown between two page times (ms).
JS_FRAMES_BETWEEN = """([a, b]) =>
    window.__uiWatch.changes.filter((t) => t >= a && t <= b).length"""
# Values the hand asked for (readout changes) between two page times (ms).
JS_ASKED_BETWEEN = """([a, b]) =>
    window.__uiWatch.asked.filter((t) => t >= a && t <= b).length"""
JS_NOW = "() => performance.now()"

# value, range and step of a slider, from its noUiSlider instance (5: noUiSlider's default
# number of steps per PageUp, used when the widget does not set keyboardPageMultiplier)
JS_SLIDER_STATE = """(target) => {
    const api = target.noUiSlider;
    return { value: Number(api.get()), min: api.options.range.min, max: api.options.range.max,
             step: api.options.step, page: api.options.keyboardPageMultiplier ?? 5 };
}"""


@dataclass
class Move:
    """One slider change and what the browser showed for it."""

    panel: int
    slider: str
    method: str
    before: str
    after: str
    latency_ms: float
    changed: bool  # the new figure differs from the old one (a snapping draw may repeat it)


def open_notebook(page: Page, url: str, path: str, timeout_s: float) -> None:
    """Open `path` (relative to the server root) in a fresh workspace; wait for an idle kernel."""
    page.goto(f"{url}lab/tree/{path}?reset", wait_until="domcontentloaded")
    page.wait_for_function(JS_READY, arg=path, timeout=timeout_s * 1000, polling=250)


def run_all_from_menu(page: Page, timeout_s: float) -> None:
    """Clear stored outputs, then Run > Run All Cells through the menu bar; wait until done."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    try:
        page.wait_for_function(JS_RUN_ALL_DONE, timeout=timeout_s * 1000, polling=500)
    except PlaywrightTimeoutError:
        state = page.evaluate(JS_STATE)
        raise AssertionError(f"Run All not finished after {timeout_s} s: {state}") from None


def wait_idle(page: Page, timeout_s: float = 60) -> None:
    page.wait_for_function(JS_IDLE, timeout=timeout_s * 1000, polling=100)


def wait_settled(page: Page, timeout_s: float) -> None:
    """Wait until JS_WATCH_DONE. The page is left alone for the first SETTLE_MS / 2 (the
    watch's times are taken in the page, and settling takes SETTLE_MS anyway): setting up
    Playwright's poller costs the page's main thread 9-17 ms (Chromium's trace, session 11),
    which would otherwise fall between a release and its picture."""
    page.wait_for_timeout(SETTLE_MS / 2)  # the driver's timer: no message to the page
    page.wait_for_function(JS_WATCH_DONE, timeout=timeout_s * 1000, polling=100)


def scroll_into_view(page: Page, element: Locator, timeout_s: float = 10) -> dict:
    """Scroll `element` into view and return its box once it stops moving: cells the browser
    skipped off screen take their real height when first drawn (JupyterLab's default
    windowing mode), which can move what is below them after the scroll."""
    element.scroll_into_view_if_needed()
    box, deadline = element.bounding_box(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(50)
        element.scroll_into_view_if_needed()
        again = element.bounding_box()
        if again == box:
            return box
        box = again
    raise AssertionError(f"{element} kept moving for {timeout_s} s after scrolling to it")


def slider_label(slider: Locator) -> str:
    # textContent: a cell the browser skips off screen has no innerText (JupyterLab's default
    # windowing mode); the labels are plain text
    return slider.locator(".widget-label").first.text_content().strip()


def sliders_to_move(panel: Locator) -> list[tuple[Locator, str]]:
    """(slider, "drag" or "keyboard"): sigma_min by mouse drag, steps by keyboard.

    A panel with neither gets its first slider moved both ways.
    """
    by_label = {slider_label(s): s for s in panel.locator(".widget-slider").all()}
    sigma = [s for name, s in by_label.items() if "σ" in name or "sigma" in name.lower()]
    steps = [s for name, s in by_label.items() if "steps" in name.lower()]
    if not sigma and not steps:
        first = panel.locator(".widget-slider").first
        return [(first, "drag"), (first, "keyboard")]
    return [(s, "drag") for s in sigma[:1]] + [(s, "keyboard") for s in steps[:1]]


def _drag(page: Page, slider: Locator) -> None:
    """Press the handle, move it 35% of the track towards the side with more room, release."""
    handle = slider.locator(".noUi-handle").first
    box = scroll_into_view(page, handle)
    track = slider.locator(".noUi-target").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    right_room = track["x"] + track["width"] - x
    state = slider.locator(".noUi-target").first.evaluate(JS_SLIDER_STATE)
    n = round((state["max"] - state["min"]) / state["step"]) + 1
    # 35% of the track, or far enough to reach the next value of a slider with few values
    dx = max(0.35, 0.75 / max(n - 1, 1)) * track["width"]
    dx *= 1 if right_room >= x - track["x"] else -1
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


def _press(page: Page, slider: Locator, state: dict) -> tuple[str, float]:
    """Focus the handle, press PageUp (PageDown near the maximum): one page of steps (one
    arrow step when the slider has fewer values than a page).

    Returns the key and the value noUiSlider must land on.
    """
    jump = state["page"] * state["step"]
    if state["value"] + jump <= state["max"] + 1e-9:
        key, target = "PageUp", state["value"] + jump
    elif state["value"] - jump >= state["min"] - 1e-9:
        key, target = "PageDown", state["value"] - jump
    else:  # fewer values than a page: one step
        up = state["value"] + state["step"] <= state["max"] + 1e-9
        key = "ArrowRight" if up else "ArrowLeft"
        target = state["value"] + (state["step"] if up else -state["step"])
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press(key)
    return key, min(max(target, state["min"]), state["max"])


def move_slider(page: Page, index: int, slider: Locator, method: str, timeout_s: float) -> Move:
    """Change one slider of panel `index`, wait for the redraw; check the readout."""
    target = slider.locator(".noUi-target").first
    readout = slider.locator(".widget-readout").first
    state = target.evaluate(JS_SLIDER_STATE)
    before = readout.text_content().strip()
    name = slider_label(slider)  # now: after the move, Playwright's calls cost the page time
    page.evaluate(JS_WATCH, index)
    if method == "drag":
        _drag(page, slider)
        expected = None
    else:
        key, expected = _press(page, slider, state)
    try:
        wait_settled(page, timeout_s)
    except PlaywrightTimeoutError:
        raise AssertionError(f"{name}: no redraw {timeout_s} s after the {method}") from None
    error = page.evaluate("() => window.__uiWatch.error")
    assert error is None, f"{name}: the figure became a traceback after the {method}:\n{error}"
    latency = page.evaluate(JS_LATENCY_MS)
    changed = page.evaluate("() => window.__uiWatch.last !== window.__uiWatch.first")
    after = readout.text_content().strip()
    value = target.evaluate(JS_SLIDER_STATE)["value"]
    assert after != before, f"{name}: readout still {before!r} after {method}"
    decimals = len(after.split(".")[1]) if "." in after else 0
    # A SelectionSlider's handle holds an option index (0, 1, ... in unit steps) and its
    # readout shows the option's label; every course slider of numbers starts above 0 or
    # is a float slider, so its readout must show the handle's value.
    is_selection = state["min"] == 0 and state["step"] == 1 and float(value).is_integer()
    assert is_selection or abs(float(after) - value) <= 0.5 * 10**-decimals + 1e-12, (
        f"{name}: readout {after!r} but the slider holds {value}"
    )
    if expected is not None:
        assert abs(value - expected) < 1e-9, f"{name}: {key} gave {value}, expected {expected}"
    wait_idle(page)
    return Move(index, name, method, before, after, latency, changed)


# --- live redraws: frames per second while t is dragged or played, and the final picture ---

JS_PICTURE_HASH = """async (index) => {
    const img = document.querySelector(`[data-ui-panel="${index}"]`).querySelector("__IMG__");
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}""".replace("__IMG__", IMG)


@dataclass
class Live:
    """A 2-second drag or Play of one slider: frames shown, then the settled picture."""

    panel: int
    slider: str
    method: str
    frames: int
    asked: int  # values the readout showed in that time: a picture per value is the most
    seconds: float
    release_ms: float  # release (or end of Play) -> last new picture
    final_matches: bool  # the settled picture is the one drawn for the final value

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @property
    def asked_per_s(self) -> float:
        return self.asked / self.seconds


def _settle(page: Page, index: int, timeout_s: float) -> float:
    """Wait until the picture stops changing after the last event; ms from event to picture."""
    wait_settled(page, timeout_s)
    error = page.evaluate("() => window.__uiWatch.error")
    assert error is None, f"panel {index}: the redraw failed:\n{error}"
    return page.evaluate(JS_LATENCY_MS)


def _final_matches(page: Page, index: int, slider: Locator, timeout_s: float) -> bool:
    """Is the settled picture the one drawn for the final value? Step away and back with the
    keyboard: a freshly drawn picture of the same value must have the same bytes."""
    settled = page.evaluate(JS_PICTURE_HASH, index)
    handle = slider.locator(".noUi-handle").first
    state = slider.locator(".noUi-target").first.evaluate(JS_SLIDER_STATE)
    away, back = (
        ("ArrowLeft", "ArrowRight")
        if state["value"] > state["min"]
        else ("ArrowRight", "ArrowLeft")
    )
    for key in (away, back):
        page.evaluate(JS_WATCH, index)
        handle.focus()
        page.keyboard.press(key)
        _settle(page, index, timeout_s)
    return page.evaluate(JS_PICTURE_HASH, index) == settled


def drag_live(page: Page, index: int, slider: Locator, seconds: float, timeout_s: float) -> Live:
    """Drag the handle end to end and back for `seconds`, counting the pictures shown. The
    handle follows the clock (its position is a function of the time elapsed), so the hand
    asks for every value twice in `seconds` however long each pointer event takes to send."""
    handle = slider.locator(".noUi-handle").first
    box = scroll_into_view(page, handle)
    track = slider.locator(".noUi-target").first.bounding_box()
    y = box["y"] + box["height"] / 2
    left, right = track["x"] + 0.02 * track["width"], track["x"] + 0.98 * track["width"]
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.evaluate(JS_WATCH, index)
    start = page.evaluate(JS_NOW)
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        phase = 2 * elapsed / seconds
        x = left + (right - left) * (phase if phase <= 1 else 2 - phase)
        page.mouse.move(x, y, steps=2)
        page.wait_for_timeout(1000 / 30)  # a hand moving continuously: ~30 events per second
    page.mouse.up()
    end = page.evaluate(JS_NOW)
    release_ms = _settle(page, index, timeout_s)
    frames = page.evaluate(JS_FRAMES_BETWEEN, [start, end])
    asked = page.evaluate(JS_ASKED_BETWEEN, [start, end])
    name = slider_label(slider)
    matches = _final_matches(page, index, slider, timeout_s)
    return Live(index, name, "drag", frames, asked, (end - start) / 1000, release_ms, matches)


def play_live(page: Page, index: int, slider: Locator, seconds: float, timeout_s: float) -> Live:
    """Press the panel's Play button (t from 0 to 1), counting pictures in its first `seconds`."""
    panel = page.locator(f'[data-ui-panel="{index}"]')
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("Home")  # t = 0: Play then runs the whole path
    wait_idle(page)
    page.evaluate(JS_WATCH, index)
    start = page.evaluate(JS_NOW)
    panel.locator(".widget-play button").first.click()
    page.wait_for_timeout(1000 * seconds)
    frames = page.evaluate(JS_FRAMES_BETWEEN, [start, start + 1000 * seconds])
    asked = page.evaluate(JS_ASKED_BETWEEN, [start, start + 1000 * seconds])
    release_ms = _settle(page, index, timeout_s)
    matches = _final_matches(page, index, slider, timeout_s)
    return Live(index, slider_label(slider), "play", frames, asked, seconds, release_ms, matches)
