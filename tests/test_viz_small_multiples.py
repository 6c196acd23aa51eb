"""small_multiples: one panel per value, the parameter passed by name, labels enforced."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ssl_course.viz import small_multiples  # noqa: E402


def _line(axis, slope):
    axis.plot([0, 1], [0, slope])
    axis.set(xlabel="x", ylabel="y")


def test_one_panel_per_value_in_order_with_default_titles():
    seen = []

    def draw(axis, slope):
        seen.append(slope)
        _line(axis, slope)

    figure = small_multiples(draw, slope=[0.5, 1, 2.0])
    assert seen == [0.5, 1, 2.0]
    assert [axis.get_title() for axis in figure.axes] == ["slope = 0.5", "slope = 1", "slope = 2"]
    assert [axis.lines[0].get_ydata()[1] for axis in figure.axes] == [0.5, 1, 2.0]
    plt.close(figure)


def test_own_title_kept_and_y_shared_across_the_row():
    def draw(axis, slope):
        _line(axis, slope)
        axis.set_title(f"steep {slope}")

    figure = small_multiples(draw, slope=[1, 10])
    assert figure.axes[0].get_title() == "steep 1"
    assert figure.axes[0].get_ylim() == figure.axes[1].get_ylim()
    plt.close(figure)


def test_column_of_axes_per_value():
    def draw(axes, slope):
        top, bottom = axes
        _line(top, slope)
        _line(bottom, -slope)

    figure = small_multiples(draw, axes_per_value=2, slope=[1, 2, 3])
    assert len(figure.axes) == 6
    plt.close(figure)


def test_missing_label_is_named():
    with pytest.raises(ValueError, match=r"slope = 2 has no y label"):
        small_multiples(lambda axis, slope: axis.set_xlabel("x"), slope=[2])
    small_multiples(lambda axis, slope: None, require_labels=False, slope=[2])
    plt.close("all")


@pytest.mark.parametrize("bad", [{}, {"a": [1], "b": [2]}])
def test_exactly_one_parameter(bad):
    with pytest.raises(TypeError, match="exactly one parameter"):
        small_multiples(_line, **bad)


def test_values_must_be_a_nonempty_list():
    with pytest.raises(TypeError, match="list of values"):
        small_multiples(_line, slope=0.5)
    with pytest.raises(ValueError, match="at least one value"):
        small_multiples(_line, slope=[])
