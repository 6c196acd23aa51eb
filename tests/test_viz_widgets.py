"""interactive_plot: sliders in a kernel (smoke mode included), a plain drawing elsewhere, errors not hidden."""
from __future__ import annotations

import pytest

from ssl_course.viz import interactive_plot


def test_outside_ipython_it_draws_once_with_the_defaults():
    calls = []
    result = interactive_plot(lambda temperature, steps: calls.append((temperature, steps)) or "drawn",
                              temperature=(0.1, 1.0, 0.1, 0.5), steps=(1, 10, 1, 3))
    assert calls == [(0.5, 3)] and result == "drawn"


@pytest.mark.parametrize("spec, message", [((0.1, 1.0, 0.1), "needs"), ((0.1, 1.0, 0.1, 2.0), "outside"),
                                           ((0.1, 1.0, 0.0, 0.5), "step")])
def test_bad_slider_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        interactive_plot(lambda temperature: None, temperature=spec)


def _run_cells(sources, monkeypatch, sent=None):
    """Execute ``sources`` as one notebook under nbclient; ``sent`` collects the types of messages the client sends."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("SSL_COURSE_SMOKE", "1")
    sent = [] if sent is None else sent

    class RecordingClient(nbclient.NotebookClient):
        async def async_start_new_kernel_client(self):
            result = await super().async_start_new_kernel_client()
            send = self.kc.shell_channel.send
            self.kc.shell_channel.send = lambda message: sent.append(message["msg_type"]) or send(message)
            return result

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    RecordingClient(notebook, timeout=120, kernel_name="python3").execute()
    return notebook


DRAW = """
from ssl_course.viz import interactive_plot
def show(temperature):
    print(f"drawn at {temperature}")
    {body}
interactive_plot(show, temperature=(0.02, 1.0, 0.02, 0.1))
"""


@pytest.mark.slow
def test_in_a_kernel_smoke_mode_shows_a_slider_and_draws_inside_it(monkeypatch):
    notebook = _run_cells([DRAW.replace("{body}", "pass")], monkeypatch)
    outputs = notebook.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    sliders = [m["state"] for m in state.values() if m["model_name"] == "FloatSliderModel"]
    assert [(s["description"], s["value"]) for s in sliders] == [("temperature", 0.1)]
    drawn = [o for m in state.values() if m["model_name"] == "OutputModel" for o in m["state"]["outputs"]]
    assert any("drawn at 0.1" in o.get("text", "") for o in drawn), drawn


FIGURE = """
import matplotlib.pyplot as plt
from ssl_course.viz import interactive_plot
def show(temperature):
    print(f"drawn at {temperature}")
    plt.plot([0, 1], [0, temperature])
    plt.show()
interactive_plot(show, temperature=(0.02, 1.0, 0.02, 0.1))
"""


@pytest.mark.slow
def test_a_headless_run_never_has_to_answer_the_figure(monkeypatch):
    """The figure and text land in the output area while the client sends nothing but the cells.

    A headless client that had to answer captured output on the shell channel while it waits for the
    cell's reply there could miss that reply and idle until its timeout (jupyter/nbclient#312).
    """
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    sent = []
    notebook = _run_cells([FIGURE], monkeypatch, sent)
    assert set(sent) <= {"kernel_info_request", "execute_request"}, sent
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    drawn = [o for m in state.values() if m["model_name"] == "OutputModel" for o in m["state"]["outputs"]]
    assert [o["output_type"] for o in drawn] == ["stream", "display_data"], drawn
    assert drawn[0]["text"] == "drawn at 0.1\n" and "image/png" in drawn[1]["data"]
    assert not [o for o in notebook.cells[0].outputs if "image/png" in o.get("data", {})], "figure also outside"


@pytest.mark.slow
def test_in_a_kernel_an_error_in_the_first_drawing_fails_the_cell(monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="failed at the slider defaults") as failed:
        _run_cells([DRAW.replace("{body}", "raise KeyError('no such class')")], monkeypatch)
    assert "no such class" in str(failed.value)
