"""The course map's family diagram: every registered method in its family box, an arrow from each method
to the methods that build on it (``tools/course_map_facts.py``), large type for a projector.

Drawn by ``python tools/course_map.py --figure`` into ``docs/course_map_families.svg``. The SVG keeps its
text as text (``svg.fonttype = none``: searchable, and tests/test_course_map.py reads the names in it)
and carries no date or random ids, so redrawing an unchanged diagram gives the same file.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from course_map_facts import FAMILIES, METHODS

#: Rows of family boxes, top to bottom: Part I (self-supervised), then Part II and the baseline.
ROWS = (("pretext", "transformation", "contrastive", "supervised_contrastive", "nearest_neighbour", "generative"),
        ("baseline", "auxiliary", "consistency", "prototype"))
#: Relative box widths (1 unless named): the baseline holds one method.
WIDTHS = {"baseline": 0.55}
#: Where teaching order would make arrows cross a node: RotNet at the bottom of its box (its arrows leave
#: downwards and to the right), PAWS above FeatMatch (its arrow comes from NNCLR, above).
DRAW_ORDER = {"pretext": ("relative_position", "jigsaw", "colorization", "rotation"),
              "prototype": ("paws", "featmatch")}
PART_COLOURS = {"self-supervised": "#dbe9f6", "semi-supervised": "#fde6cf", "both": "#e6e6e6"}
PART_EDGES = {"self-supervised": "#2f6ea5", "semi-supervised": "#c26a12", "both": "#555555"}
FONT = 15           # method names; family titles are larger
ROW_TOP = (0.93, 0.44)
ROW_HEIGHT = 0.40
NODE_STEP = 0.075


def _members(family: str) -> list[str]:
    """The family's methods top to bottom: teaching order (the order of ``METHODS``) unless DRAW_ORDER says."""
    members = [name for name, facts in METHODS.items() if facts.family == family]
    order = DRAW_ORDER.get(family, ())
    return sorted(members, key=lambda name: order.index(name) if name in order else len(order))


def _draw_boxes(ax) -> dict:
    """Family boxes with their methods as labelled nodes; returns ``{method: text artist}``."""
    from matplotlib.patches import FancyBboxPatch

    nodes = {}
    for row, families in enumerate(ROWS):
        unit = 0.985 / sum(WIDTHS.get(family, 1.0) for family in families)
        top = ROW_TOP[row]
        left = 0.0075
        for family in families:
            title, part = FAMILIES[family]
            width = unit * WIDTHS.get(family, 1.0)
            ax.add_patch(FancyBboxPatch((left + 0.004, top - ROW_HEIGHT), width - 0.008, ROW_HEIGHT,
                                        boxstyle="round,pad=0,rounding_size=0.012", linewidth=2,
                                        facecolor=PART_COLOURS[part], edgecolor=PART_EDGES[part]))
            ax.text(left + width / 2, top - 0.04, textwrap.fill(title, 16), ha="center", va="center",
                    fontsize=FONT + 2, fontweight="bold", color=PART_EDGES[part], linespacing=1.1)
            for index, name in enumerate(_members(family)):
                facts = METHODS[name]
                y = top - 0.14 - index * NODE_STEP
                nodes[name] = ax.text(left + width / 2, y, f"{facts.title}  ({facts.notebook})", ha="center",
                                      va="center", fontsize=FONT, zorder=3,
                                      bbox=dict(boxstyle="round,pad=0.35", facecolor="white",
                                                edgecolor=PART_EDGES[part], linewidth=1.5))
            left += width
    return nodes


def _draw_arrows(ax, nodes: dict) -> None:
    """One arrow from each method to every method that builds on it."""
    for name, facts in METHODS.items():
        for parent in facts.builds_on:
            same_family = METHODS[parent].family == facts.family
            ax.annotate("", xy=(0.5, 0.5), xycoords=nodes[name], xytext=(0.5, 0.5), textcoords=nodes[parent],
                        zorder=2, arrowprops=dict(
                            arrowstyle="-|>,head_length=0.8,head_width=0.4", linewidth=2.2, mutation_scale=22,
                            color="#333333" if same_family else "#7a3e9d", alpha=0.85,
                            connectionstyle="arc3,rad=0.35" if same_family else "arc3,rad=0.12",
                            patchA=nodes[parent].get_bbox_patch(), patchB=nodes[name].get_bbox_patch(),
                            shrinkA=2, shrinkB=2))


def draw(path: Path) -> None:
    """Draw the diagram into ``path`` (SVG, or any format matplotlib writes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    missing = sorted(set(METHODS) - {name for row in ROWS for family in row for name in _members(family)})
    if missing:
        raise ValueError(f"methods whose family is not drawn: {missing}; add their family to ROWS")
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "course-map", "font.family": "DejaVu Sans"}):
        figure = plt.figure(figsize=(20, 11.25))
        ax = figure.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
        ax.text(0.01, 0.975, "Part I · self-supervised (no labels while learning features)", fontsize=FONT + 4,
                fontweight="bold", color=PART_EDGES["self-supervised"], va="center")
        ax.text(0.01, 0.485, "Part II · semi-supervised (few labels + unlabelled images)", fontsize=FONT + 4,
                fontweight="bold", color=PART_EDGES["semi-supervised"], va="center")
        nodes = _draw_boxes(ax)
        _draw_arrows(ax, nodes)
        ax.text(0.99, 0.012, "A → B: B builds on A   (purple: across families)   (NN): notebook",
                fontsize=FONT - 1, ha="right", va="bottom", color="#333333")
        figure.savefig(path, metadata={"Date": None})
        plt.close(figure)
