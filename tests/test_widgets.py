"""fmlib.widgets: honest controls, live coalesced redraws, Play on t; and, for every view in
the course, that its figure reports exactly the value its controls show."""

import re
import threading
import time

import ipywidgets
import pytest
from matplotlib.text import Text

from fmlib import panel as panel_module
from fmlib import plots, widgets
from fmlib.figures import all_views

VIEWS = all_views()


def test_slider_ranges_and_errors():
    s = widgets.sigma_min_slider()
    assert (s.min, s.max, s.value, s.continuous_update) == (0.0, 0.5, 0.0, True)
    k = widgets.steps_slider(5)
    assert (k.min, k.max, k.value, k.continuous_update) == (1, 100, 5, True)
    t = widgets.t_slider()
    assert [v for _, v in t.options] == [k / 20 for k in range(21)]
    assert t.label == "0.50" and t.continuous_update
    chosen = widgets.sigma_min_slider(0.1, options=(0.0, 0.05, 0.1, 0.25))
    assert [v for _, v in chosen.options] == [0.0, 0.05, 0.1, 0.25]
    assert widgets.readout(chosen) == "0.10"
    assert widgets.readout(widgets.steps_slider(8, options=(1, 2, 4, 8))) == "8"
    assert widgets.solver_dropdown().value == "midpoint"
    assert widgets.dataset_dropdown().value == "checkerboard"
    with pytest.raises(ValueError, match=r"value must be in \[0, 0.5\], got 0.7"):
        widgets.sigma_min_slider(0.7)
    with pytest.raises(ValueError, match=r"options must lie in \[0, 1\), got \[1.5\]"):
        widgets.sigma_min_slider(0.0, options=(0.0, 1.5))
    with pytest.raises(ValueError, match="value must be one of"):
        widgets.sigma_min_slider(0.2, options=(0.0, 0.1))
    with pytest.raises(ValueError, match=r"value must be an integer in \[1, 100\], got 0"):
        widgets.steps_slider(0)
    with pytest.raises(ValueError, match=r"options must lie in \[0, 1\]"):
        widgets.t_slider(0.5, options=(0.5, 2.0))
    with pytest.raises(ValueError, match="distinct labels"):
        widgets.t_slider(0.5, options=(0.5, 0.501))
    with pytest.raises(ValueError, match="value must be one of euler, midpoint, rk4"):
        widgets.solver_dropdown("heun")


class Slow(plots.LiveFigure):
    """A view whose redraw takes 30 ms and whose title reads t."""

    def build(self):
        fig, (ax,) = plots.new_axes(1)
        (self.line,) = ax.plot([], [])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title("t = 0.00")
        self.dynamic(self.line, ax.title)
        self.drawn, self.calls = [], []
        return fig

    def update(self, t: float = 0.5, sigma_min: float = 0.0) -> None:
        time.sleep(0.03)
        self.line.set_data([0, 1], [0, t])
        self.line.axes.set_title(f"t = {t:.2f}")
        self.drawn.append(t)
        self.calls.append((t, sigma_min))

    def controls(self):
        return {"t": widgets.t_slider(0.0), "sigma_min": widgets.sigma_min_slider()}

    def inactive(self, t: float = 0.5, sigma_min: float = 0.0) -> dict[str, str]:
        return {"sigma_min": "no effect at t = 1"} if t == 1.0 else {}


def test_panel_draws_the_last_value_and_drops_stale_ones():
    view = Slow()
    box = widgets.panel(view)
    image = box.children[-1]
    assert isinstance(image, ipywidgets.Image) and bytes(image.value).startswith(b"\x89PNG")
    row = box.children[0].children
    play, t = row[0], row[1]
    assert isinstance(play, ipywidgets.Play) and (play.min, play.max) == (0, 20)
    assert play.interval == widgets.PLAY_INTERVAL_MS <= 125  # Play asks for >= 8 frames/s
    for k in range(1, 20):  # a drag: 19 values, faster than a 30 ms redraw
        t.index = k
    box.wait()
    assert t.value == 0.95 and view.drawn.index(0.95) < 10  # drawn soon after the last value
    assert bytes(image.value) == widgets.render_png(Slow(), {"t": 0.95, "sigma_min": 0.0})
    assert box.redraws < 10, f"{box.redraws} redraws for 19 values: not coalesced"


def test_nearby_values_come_nearest_first_next_one_up_first():
    t = widgets.t_slider(0.5)
    assert widgets.nearby(t, 0.5, n=4) == [0.55, 0.45, 0.6, 0.4]
    assert widgets.nearby(t, 0.0)[:2] == [0.05, 0.1] and len(widgets.nearby(t, 0.0, n=99)) == 20
    assert widgets.nearby(widgets.steps_slider(1, max=5), 1) == [2, 3, 4, 5]
    assert widgets.nearby(widgets.sigma_min_slider(0.1), 0.1, n=2) == [0.11, 0.09]
    assert widgets.nearby(widgets.solver_dropdown(), "euler") == []


def test_frame_cache_keeps_the_most_recent_frames():
    cache = widgets.FrameCache(size=2)
    for t in (0.1, 0.2, 0.3):
        cache.put({"t": t}, (bytes([int(10 * t)]), {}))
    assert {"t": 0.1} not in cache and cache.get({"t": 0.3}) == (bytes([3]), {})
    assert {"t": 0.1 + 0.2} in cache  # 0.30000000000000004: the same slider value


def test_frames_along_t_are_drawn_ahead_once_the_hand_rests_and_equal_fresh_draws():
    view = Slow()
    box = widgets.panel(view)
    image, t = box.children[-1], box.children[0].children[1]
    t.index = 3  # t = 0.15
    box.wait(ahead=True)
    assert sorted(view.drawn) == sorted(widgets.T_GRID)  # the whole grid, once each
    drawn = len(view.drawn)
    t.index = 17  # drawn ahead: shown from the cache without drawing
    box.wait(ahead=True)
    assert len(view.drawn) == drawn and box.redraws == 2
    assert bytes(image.value) == widgets.render_png(Slow(), {"t": 0.85, "sigma_min": 0.0})


def test_a_request_waits_for_at_most_the_frame_drawn_ahead():
    view = Slow()  # 30 ms a frame
    box = widgets.panel(view)
    t, sigma = box.children[0].children[1:]
    t.index = 1
    deadline = time.monotonic() + 60  # a hang detector
    while len(view.drawn) < 4:  # drawing ahead now (the first picture, t = 0.05, then ahead)
        assert time.monotonic() < deadline, "nothing was drawn ahead"
        time.sleep(0.005)
    assert not box.done()
    before = len(view.calls)
    sigma.value = 0.33
    box.wait()
    asked = view.calls.index((0.05, 0.33))
    # Counted, not timed: between the request and its frame, at most the one frame that was
    # being drawn ahead (a busy CI machine slows frames, not this count).
    assert asked - before <= 1, f"{asked - before} frames drawn ahead before the one asked for"
    assert bytes(box.children[-1].value) == widgets.render_png(
        Slow(), {"t": 0.05, "sigma_min": 0.33}
    )
    box.wait(ahead=True)  # then frames along sigma_min, the control moved last
    assert len(view.drawn) >= 2 + 20 + widgets.AHEAD_VALUES


def test_a_frame_drawn_ahead_gives_way_to_a_request_between_its_stages():
    view = Slow()
    events, inside, release = [], threading.Event(), threading.Event()
    raster, update = view.raster, view.update

    def gated_update(**values):  # the first frame drawn ahead waits inside its maths
        events.append(("update", values["t"], values["sigma_min"]))
        if len(view.drawn) >= 2 and not release.is_set():  # shown: t = 0, then t = 0.05
            inside.set()
            release.wait(60)
        update(**values)

    view.raster = lambda stop=None: (events.append("raster"), raster(stop))[1]
    view.update = gated_update
    box = widgets.panel(view)
    box.set(t=0.05)
    assert inside.wait(60), "nothing was drawn ahead"  # a hang detector
    mark = len(events)
    box.set(sigma_min=0.33)  # asked while a frame ahead is in its maths
    release.set()
    box.wait()
    asked = events.index(("update", 0.05, 0.33), mark)
    # the frame drawn ahead stopped after its maths: no raster between the request and its frame
    assert "raster" not in events[mark:asked], events[mark:asked]
    assert box.picture == widgets.render_png(Slow(), {"t": 0.05, "sigma_min": 0.33})
    assert box.shown == {"t": 0.05, "sigma_min": 0.33} and box.redraws == 2


class Gate:
    """A render for a bare Redrawer that waits inside its frame until released."""

    def __init__(self):
        self.inside, self.release, self.shown = threading.Event(), threading.Event(), []

    def __call__(self, values: dict, give_way) -> bool:
        self.inside.set()
        assert self.release.wait(60), "never released"  # a hang detector
        self.shown.append(values["t"])
        return True


def _until(done, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # a hang detector
    while not done():
        assert time.monotonic() < deadline, "the redraw thread hangs"
        time.sleep(0.005)


def test_give_way_holds_the_screen_to_min_fps(monkeypatch):
    """The rule: an outdated frame makes room for newer values only while their picture, drawn
    now, would still come within 1/MIN_FPS s of the screen going out of date (a frozen clock
    makes the choice certain)."""
    now = [10.0]
    monkeypatch.setattr(panel_module, "_clock", lambda: now[0])
    gate = Gate()
    redrawer = panel_module.Redrawer(gate, on_error=lambda exc: None)
    redrawer.request({"t": 0.1})  # the screen is out of date from 10.0 on
    assert gate.inside.wait(60)
    assert not redrawer.give_way()  # nothing newer is waiting
    now[0] = 10.05
    redrawer.request({"t": 0.2})
    assert redrawer.give_way()  # 0.05 s out of date + the last frame's 0 s < 1/8 s
    now[0] = 10.0 + 1 / panel_module.MIN_FPS
    assert not redrawer.give_way()  # out of date for 1/8 s: finish this frame
    gate.release.set()
    _until(lambda: redrawer.drawn >= 2 and redrawer.idle())
    assert gate.shown == [0.1, 0.2] and redrawer.abandoned == 0

    # a frame shown after 0.1 s of the clock: the next one is expected to take as long
    gate.inside.clear()
    gate.release.clear()
    redrawer.request({"t": 0.3})
    assert gate.inside.wait(60)
    now[0] += 0.1
    gate.release.set()
    _until(lambda: redrawer.drawn >= 3 and redrawer.idle())
    gate.inside.clear()
    gate.release.clear()
    redrawer.request({"t": 0.4})  # the screen is out of date from now on
    assert gate.inside.wait(60)
    redrawer.request({"t": 0.5})
    now[0] += 0.02
    assert redrawer.give_way()  # 0.02 s + 0.1 s < 1/8 s
    now[0] += 0.01
    assert not redrawer.give_way()  # 0.03 s + 0.1 s > 1/8 s
    gate.release.set()
    _until(lambda: redrawer.drawn >= 5 and redrawer.idle())
    assert gate.shown == [0.1, 0.2, 0.3, 0.4, 0.5]


def _gated_panel(release: threading.Event, inside: threading.Event):
    """A Slow panel whose requested frame at t = 0.05 waits inside its maths; its events."""
    view = Slow()
    events = []
    raster, update = view.raster, view.update

    def gated_update(**values):
        events.append(("update", values["t"]))
        if values["t"] == 0.05 and not release.is_set():
            inside.set()
            release.wait(60)
        update(**values)

    view.raster = lambda stop=None: (events.append("raster"), raster(stop))[1]
    view.update = gated_update
    return widgets.panel(view), events


def test_an_outdated_frame_gives_way_to_the_newer_value_after_its_maths(monkeypatch):
    monkeypatch.setattr(panel_module, "_clock", lambda: 0.0)  # the screen is never late
    inside, release = threading.Event(), threading.Event()
    box, events = _gated_panel(release, inside)
    box.set(t=0.05)
    assert inside.wait(60), "the frame asked for was not drawn"  # a hang detector
    box.set(t=0.1)  # asked while the frame of 0.05 is in its maths
    release.set()
    box.wait()
    start = events.index(("update", 0.05))
    # the outdated frame stopped after its maths: no raster before the newer value's maths
    assert events[start + 1] == ("update", 0.1), events[start:]
    assert box.picture == widgets.render_png(Slow(), {"t": 0.1, "sigma_min": 0.0})
    assert box.shown == {"t": 0.1, "sigma_min": 0.0} and box.abandoned == 1


def test_an_outdated_frame_is_finished_when_the_screen_has_waited_too_long(monkeypatch):
    ticks = iter(range(10**6))  # every look at the clock: 0.2 s later than the last one
    monkeypatch.setattr(panel_module, "_clock", lambda: 0.2 * next(ticks))
    inside, release = threading.Event(), threading.Event()
    box, events = _gated_panel(release, inside)
    box.set(t=0.05)
    assert inside.wait(60), "the frame asked for was not drawn"
    box.set(t=0.1)
    release.set()
    box.wait()
    start = events.index(("update", 0.05))
    assert events[start + 1] == "raster" and box.abandoned == 0  # 0.05's picture was shown
    assert box.picture == widgets.render_png(Slow(), {"t": 0.1, "sigma_min": 0.0})


def test_the_panel_api_checks_its_arguments_and_detects_a_hang():
    view = Slow()
    box = widgets.panel(view)
    assert box.values() == {"t": 0.0, "sigma_min": 0.0} and box.view is view
    with pytest.raises(ValueError, match="name must be one of t, sigma_min, got 'steps'"):
        box.set(steps=3)
    view.update = lambda **_: time.sleep(1.0)
    box.set(t=0.5)
    with pytest.raises(TimeoutError, match="did not finish in 0.05 s"):
        box.wait(timeout=0.05)
    box.wait()
    del view.update  # the frames drawn ahead after this test: the view's own update again


def test_panel_disables_inactive_controls_with_the_reason():
    view = Slow()
    box = widgets.panel(view)
    t, sigma = box.children[0].children[1:]
    t.value = 1.0
    box.wait()
    assert sigma.disabled and "no effect at t = 1" in box.children[1].value
    t.value = 0.5
    box.wait()
    assert not sigma.disabled and box.children[1].value == ""


def test_panel_with_a_plain_draw_function_and_errors():
    calls = []

    def draw(sigma_min, steps):
        calls.append((sigma_min, steps))
        fig, _ = plots.new_axes(1)
        return fig

    s, k = widgets.sigma_min_slider(), widgets.steps_slider(3)
    box = widgets.panel(draw, sigma_min=s, steps=k)
    s.value = 0.2
    box.wait()
    k.value = 7
    box.wait(ahead=True)
    assert calls[0] == (0.0, 3) and (0.2, 7) in calls
    with pytest.raises(ValueError, match="controls must name at least one widget"):
        widgets.panel(draw)
    with pytest.raises(ValueError, match="draw must be callable"):
        widgets.panel(None, sigma_min=s)


def test_a_failed_redraw_is_shown_on_the_panel():
    view = Slow()
    box = widgets.panel(view)
    view.update = lambda **_: 1 / 0
    box.children[0].children[1].index = 3
    box.wait()
    assert "redraw failed: ZeroDivisionError" in box.children[1].value


@pytest.mark.parametrize("name, make_view, kwargs", VIEWS, ids=[v[0] for v in VIEWS])
def test_the_figure_reports_what_each_control_shows(name, make_view, kwargs):
    view = make_view()
    controls = view.controls()
    assert controls, f"{name} has no controls"
    defaults = {k: c.value for k, c in controls.items()}
    for key, control in controls.items():
        for value in widgets.sweep(control):
            control.value = value
            values = {**defaults, key: control.value}
            with view.lock:
                view.update(**values)
            if key in view.inactive(**values):
                continue
            label = widgets.readout(control)
            texts = [t.get_text() for t in view.fig.findobj(Text)]
            if isinstance(control, ipywidgets.Dropdown):
                found = any(label.lower() in s.lower() for s in texts)
            else:
                pattern = re.compile(rf"=\s*{re.escape(label)}(?![0-9])")
                found = any(pattern.search(s) for s in texts)
            assert found, f"{name}: {key} shows {label!r} but no text of the figure says so"
        control.value = defaults[key]


def test_frames_are_drawn_on_one_torch_thread_and_the_count_comes_back():
    """fmlib.panel.one_draw_thread: one thread while any panel draws (two panels' frames may
    overlap, each on its own thread), the notebook's count back after the last, and a count a
    cell set meanwhile kept."""
    import torch

    from fmlib import panel
    from fmlib.panel import one_draw_thread

    deadline = time.monotonic() + 60  # earlier tests' panels may still draw frames ahead
    while panel._drawing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert panel._drawing == 0
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with one_draw_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        # Two panels: A starts, B starts, A ends while B still draws, then B ends.
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        inside: list[int] = []

        def panel_a():
            with one_draw_thread():
                a_in.set()
                b_in.wait(5)
            a_out.set()

        def panel_b():
            a_in.wait(5)
            with one_draw_thread():
                b_in.set()
                a_out.wait(5)
                inside.append(torch.get_num_threads())  # A is done, B still draws

        threads = [threading.Thread(target=f) for f in (panel_a, panel_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert inside == [1]
        assert torch.get_num_threads() == 2
        with one_draw_thread():  # a cell sets its own count while a frame is drawn: kept
            torch.set_num_threads(3)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
