"""fmlib.figure_check finds what a projector makes unreadable, and passes a clean figure."""

import matplotlib.pyplot as plt
import pytest

from fmlib import figure_check, plots


@pytest.fixture(autouse=True)
def course_style():
    with plt.rc_context():
        plots.use_style()
        yield
    plt.close("all")


def test_a_clean_figure_passes():
    fig, (a, b) = plots.new_axes(2)
    a.set(title="left", xlabel="x", ylabel="density")
    b.set(title="right", xlabel="t")
    a.plot([0, 1], [0, 1], label="a line")
    a.legend()
    assert figure_check.text_problems(fig) == []


def test_small_text_is_found():
    fig, (ax,) = plots.new_axes(1)
    ax.set_title("tiny", fontsize=7)
    assert any("'tiny' is 7.0 pt" in p for p in figure_check.text_problems(fig))


def test_a_wide_figure_shrinks_its_text():
    fig, (ax,) = plots.new_axes(1)
    fig.set_size_inches(32, 3)  # 2560 px at 80 dpi: shown at half size on 1280 px
    ax.set_title("ten points", fontsize=10)
    assert any("'ten points' is 5.0 pt" in p for p in figure_check.text_problems(fig))


def test_overlapping_titles_are_found():
    fig, (a, b) = plots.new_axes(2, size=1.2)
    fig.set_layout_engine("none")
    a.set_title("a long title that runs into the next panel")
    b.set_title("the next panel's title")
    problems = figure_check.text_problems(fig)
    assert any("overlap" in p and "a long title" in p for p in problems)


def test_overlapping_tick_labels_are_found():
    fig, (ax,) = plots.new_axes(1, size=2)
    ax.set_xticks(range(40))
    assert any("overlap" in p for p in figure_check.text_problems(fig))


def test_clipped_text_is_found_in_a_frame_not_inline():
    fig, (ax,) = plots.new_axes(1)
    fig.set_layout_engine("none")
    ax.text(0.5, 1.3, "off the top", transform=ax.transAxes)
    assert any("clipped" in p for p in figure_check.text_problems(fig))
    assert not any("clipped" in p for p in figure_check.text_problems(fig, clipped=False))


def test_show_checks_only_when_enabled(monkeypatch):
    fig, (ax,) = plots.new_axes(1)
    ax.set_title("tiny", fontsize=5)
    monkeypatch.setattr(plt, "show", figure_check._plain_show)
    monkeypatch.setenv(figure_check.ENV, "1")
    figure_check.install()
    with pytest.raises(ValueError, match="not readable at 1280 x 720"):
        plt.show()


def test_a_suptitle_is_counted_once():
    fig, (ax,) = plots.new_axes(1)
    fig.suptitle("one suptitle")  # in fig.texts and in fig._suptitle
    assert figure_check.text_problems(fig) == []
